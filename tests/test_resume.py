"""Resume after a crash, determinism on CPU, and a clean stop on a non-finite loss."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sortgpt.checkpoint import NonFiniteError, load_checkpoint
from sortgpt.module import SortGPTModule
from sortgpt.pipeline import train
from tests.conftest import ROOT, TINY, compose_cfg

# TINY with dropout on, so that the RNG matters, and losses logged every 5 steps
RUN = TINY + ["model.dropout=0.1", "trainer.log_every_n_steps=5",
              "callbacks.last_checkpoint.every_n_train_steps=50", "~callbacks.learning_rate_monitor"]


def _losses(out) -> dict[int, float]:
    ea = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    ea.Reload()
    return {e.step: e.value for e in ea.Scalars("train/loss")}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_losses_and_an_exact_resume(tmp_path):
    """Run A trains 200 steps; run B trains 100, stops, and is resumed to 200 from its last.ckpt.

    Same seed on CPU: B logs exactly A's losses, before the resume (determinism) and after it (step count,
    optimizer state, dropout RNG and data position all restored).
    """
    _, a = train(compose_cfg("train.yaml", RUN + ["trainer.max_steps=200"], tmp_path / "a"))
    _, b1 = train(compose_cfg("train.yaml", RUN + ["trainer.max_steps=100"], tmp_path / "b1"))
    first = tmp_path / "b1" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(first)["global_step"] == 100
    before = {p.name: _digest(p) for p in (tmp_path / "b1" / "checkpoints").iterdir()}
    _, b2 = train(compose_cfg("train.yaml", RUN + ["trainer.max_steps=200", f"ckpt_path={first}"],
                              tmp_path / "b2"))
    assert a["trainer"].global_step == b2["trainer"].global_step == 200

    la, lb1, lb2 = _losses(tmp_path / "a"), _losses(tmp_path / "b1"), _losses(tmp_path / "b2")
    assert min(lb2) > 100 and max(lb1) < 100  # each run logged its own part
    lb = {**lb1, **lb2}
    common = sorted(set(la) & set(lb))
    assert len(common) >= 38 and common[-1] >= 195, common
    assert [la[s] for s in common] == [lb[s] for s in common]  # exactly equal, not approximately
    assert len(set(la.values())) > 15  # the losses do change: the comparison is not vacuous

    # the resumed run wrote its own folder; the first run's checkpoints are untouched
    assert load_checkpoint(tmp_path / "b2" / "checkpoints" / "last.ckpt")["global_step"] == 200
    assert {p.name: _digest(p) for p in (tmp_path / "b1" / "checkpoints").iterdir()} == before
    end_a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.ckpt")["state_dict"]
    end_b = load_checkpoint(tmp_path / "b2" / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(value, end_b[key]) for key, value in end_a.items())


CLI = ["data.length=4", "data.batch_size=64", "data.full_eval=true", "model.n_layer=2", "model.n_head=2",
       "model.d_model=48", "model.dropout=0.0", "model.optimizer.lr=3e-3", "trainer.max_steps=400",
       "trainer.val_check_interval=100", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
       "~callbacks.rich_progress_bar", "callbacks.last_checkpoint.every_n_train_steps=20"]


def test_kill_and_resume_from_the_command_line(tmp_path):
    """A real training killed with SIGKILL after its first last.ckpt, resumed with ckpt_path=latest."""
    out = tmp_path / "outputs"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, str(ROOT / "train.py"), *CLI, f"paths.log_dir={out}"]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while not list(out.glob("train/runs/*/checkpoints/last.ckpt")):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no last.ckpt appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (first,) = out.glob("train/runs/*/checkpoints/last.ckpt")
    killed_at = load_checkpoint(first)["global_step"]
    assert 0 < killed_at < 400  # killed mid-run: the resume has work left to do
    digest = _digest(first)

    proc = subprocess.run(cmd + ["ckpt_path=latest"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert f"Resuming {first} at step {killed_at}, to trainer.max_steps=400" in text
    assert text.count("final score: ") == 2

    runs = sorted(p.parent.parent for p in out.glob("train/runs/*/checkpoints/last.ckpt"))
    assert len(runs) == 2 and runs[0] == first.parent.parent  # a new folder; the old one kept as it was
    assert _digest(first) == digest
    resumed = runs[1] / "checkpoints" / "last.ckpt"
    assert load_checkpoint(resumed)["global_step"] == 400
    model = SortGPTModule.load_from_checkpoint(resumed, map_location="cpu", weights_only=True)
    held_out = model.task.enumerate("test")
    accuracy = (model.sort(held_out) == model.task.solve(held_out)).all(dim=1).float().mean().item()
    assert accuracy >= 0.95  # a working checkpoint: it sorts the held-out sequences


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = compose_cfg("train.yaml", TINY + ["model.optimizer.lr=1e4", "trainer.max_steps=200",
                                            "callbacks.last_checkpoint.every_n_train_steps=1"], tmp_path)
    with pytest.raises(NonFiniteError, match=r"training loss became non-finite at iter (\d+)") as info:
        train(cfg)
    bad_iter = int(re.search(r"iter (\d+)", str(info.value)).group(1))
    assert "the last good checkpoint is kept" in str(info.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(last)
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    assert checkpoint["global_step"] <= bad_iter
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
