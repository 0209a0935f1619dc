"""Safe checkpoints: bad files get a clear error naming them; loading never runs code; saving is atomic."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from sortgpt.checkpoint import (
    CheckpointError,
    NonFiniteError,
    SafeCheckpointIO,
    check_compatible,
    load_checkpoint,
    resolve_ckpt_path,
)
from sortgpt.pipeline import evaluate, train
from tests.conftest import ROOT, TINY, compose_cfg


@pytest.fixture()
def good(tiny_run, tmp_path):
    """A copy of a real checkpoint of the tiny run (the run's own files are left alone)."""
    path = tmp_path / "good.ckpt"
    shutil.copy(tiny_run["out"] / "checkpoints" / "last.ckpt", path)
    return path


def _eval(path, tmp_path, *overrides):
    return evaluate(compose_cfg("eval.yaml", [f"ckpt_path={path}", "trainer.enable_progress_bar=false",
                                              *overrides], tmp_path / "eval"))


def test_good_checkpoint_loads_with_weights_only(good):
    checkpoint = load_checkpoint(good)
    assert checkpoint["global_step"] == 400 and checkpoint["hyper_parameters"]["length"] == 4
    assert torch.load(good, weights_only=True)["global_step"] == 400  # nothing outside the allow-list


def _damage(good, tmp_path, how: str):
    data = good.read_bytes()
    bad = tmp_path / f"{how}.ckpt"
    if how == "empty":
        bad.write_bytes(b"")
    elif how == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif how == "flipped":  # bytes flipped inside the tensor data: torch alone would load it silently
        b = bytearray(data)
        for i in range(len(b) // 3, len(b) // 3 + 32):
            b[i] ^= 0xFF
        bad.write_bytes(bytes(b))
    elif how == "text":
        bad.write_text("not a checkpoint\n")
    return bad


@pytest.mark.parametrize(("how", "message"), [
    ("missing", "does not exist"),
    ("empty", "is empty (0 bytes)"),
    ("truncated", "is truncated or not a PyTorch checkpoint"),
    ("flipped", "is corrupted"),
    ("text", "is truncated or not a PyTorch checkpoint"),
])
def test_bad_file_is_named_by_eval(good, tmp_path, how, message):
    bad = tmp_path / "missing.ckpt" if how == "missing" else _damage(good, tmp_path, how)
    with pytest.raises(CheckpointError) as info:
        _eval(bad, tmp_path)
    assert str(bad) in str(info.value) and message in str(info.value)


def test_loading_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="outside the allowed types .*system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_plain_torch_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"lm_head.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_checkpoint(path)


def test_eval_refuses_another_task_shape(good, tmp_path):
    with pytest.raises(CheckpointError) as info:
        _eval(good, tmp_path, "data.length=6", "data.num_digits=5")
    text = str(info.value)
    assert "data.length=6, data.num_digits=5 disagree with the checkpoint" in text
    assert "data.length=4 data.num_digits=3" in text


def test_resume_refuses_another_model_shape(good, tmp_path):
    cfg = compose_cfg("train.yaml", TINY + ["model.d_model=64", f"ckpt_path={good}"], tmp_path)
    wanted = r"model.d_model=64 disagrees .*\nTo use it, set: model.d_model=48"
    with pytest.raises(CheckpointError, match=wanted):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()  # refused before anything was built


def test_check_compatible_ignores_unset_keys(good):
    check_compatible(load_checkpoint(good), good, {"data": {"length": None, "num_digits": 3}})


def test_a_failed_save_leaves_the_old_checkpoint_whole(good, tmp_path):
    """A crash in the middle of writing (here: an object that cannot be pickled) never replaces last.ckpt."""
    before = good.read_bytes()
    checkpoint = load_checkpoint(good)
    io = SafeCheckpointIO()
    with pytest.raises(Exception, match="pickle"):
        io.save_checkpoint({**checkpoint, "unpicklable": lambda: None}, good)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.ckpt"]  # no temporary file left behind
    # and a good save replaces it atomically, loadable at once
    io.save_checkpoint({**checkpoint, "global_step": 401}, good)
    assert load_checkpoint(good)["global_step"] == 401


def test_non_finite_weights_are_never_saved(good):
    before = good.read_bytes()
    checkpoint = load_checkpoint(good)
    state = dict(checkpoint["state_dict"])
    state["model.lm_head.weight"] = torch.full_like(state["model.lm_head.weight"], float("nan"))
    with pytest.raises(NonFiniteError, match="refusing to save .* at step 400: the weights are not finite"):
        SafeCheckpointIO().save_checkpoint({**checkpoint, "state_dict": state}, good)
    assert good.read_bytes() == before


def test_latest_is_the_newest_last_ckpt(tmp_path):
    runs = tmp_path / "train" / "runs"
    with pytest.raises(CheckpointError, match="no run under .* has a checkpoints/last.ckpt"):
        resolve_ckpt_path("latest", runs)
    for i, name in enumerate(["2026-01-02_00-00-00", "2026-01-01_00-00-00"]):
        (runs / name / "checkpoints").mkdir(parents=True)
        f = runs / name / "checkpoints" / "last.ckpt"
        f.write_bytes(b"x")
        os.utime(f, (time.time() + i, time.time() + i))
    newest = runs / "2026-01-01_00-00-00" / "checkpoints" / "last.ckpt"
    assert resolve_ckpt_path("latest", runs) == str(newest)
    assert resolve_ckpt_path(runs / "2026-01-02_00-00-00", runs).endswith("00-00-00/checkpoints/last.ckpt")
    assert resolve_ckpt_path(None, runs) is None


def test_eval_command_line_with_a_truncated_file(good, tmp_path):
    bad = _damage(good, tmp_path, "truncated")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={bad}",
                           f"paths.log_dir={tmp_path / 'outputs'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"error: checkpoint '{bad}'" in proc.stderr and "truncated" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len((proc.stdout + proc.stderr).strip().splitlines()) <= 4
