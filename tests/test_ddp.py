"""trainer=ddp: a real 2-process CPU (gloo) training, one run folder, global exact counts, rank-zero files."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from sortgpt.data import SortTask
from sortgpt.ddp import check_launch
from tests.conftest import ROOT, compose_cfg


def test_two_process_cpu_ddp_training_end_to_end(tmp_path):
    cmd = [
        sys.executable, "train.py", "trainer=ddp", "trainer.accelerator=cpu", "data.length=4",
        "data.full_eval=true", "data.eval_batch_size=7", "model.n_layer=1", "model.n_head=2",
        "model.d_model=32", "trainer.max_steps=20", "trainer.val_check_interval=10",
        "trainer.enable_progress_bar=false", "~callbacks.rich_progress_bar",
        "trainer.enable_model_summary=false", f"paths.log_dir={tmp_path}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (run,) = (tmp_path / "train" / "runs").iterdir()  # one run folder for both processes
    log = (run / "train.log").read_text()
    assert "Starting with 2 processes" in out.stdout + out.stderr or "MEMBER: 2/2" in out.stdout + out.stderr
    task = SortTask(4, 3, 0.25)
    # every sequence of each split scored exactly once across the two ranks (no padding, no drop)
    for split in ("train", "test"):
        n = task.enumerate(split).size(0)
        lines = [ln for ln in log.splitlines() if f"/{n} = " in ln and "final score: " in ln]
        assert lines, f"no final score over all {n} {split} sequences in the log"
    assert log.count("final score: ") == 2  # rank zero only
    assert log.count("iter 0: train loss") == 1
    assert "[rank: 1]" not in log
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".hydra")) == [".hydra"]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "attention_maps").iterdir()) == ["example_0.png", "example_1.png"]
    assert not any(p.name.startswith("train_ddp_process") for p in run.rglob("*"))


def _multirun_cfg(tmp_path, overrides):
    cfg = compose_cfg("train.yaml", overrides, tmp_path)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig().set_config(cfg)
    return cfg


def test_ddp_multirun_fails_up_front_with_what_to_use_instead(tmp_path):
    cfg = _multirun_cfg(tmp_path, ["trainer=ddp"])
    with pytest.raises(ValueError, match="submitit_slurm") as err:
        check_launch(cfg)
    assert "trainer.devices=2" in str(err.value) and "python train.py trainer=ddp" in str(err.value)
    check_launch(_multirun_cfg(tmp_path, ["trainer=ddp", "trainer.devices=1"]))  # one process: fine
    check_launch(_multirun_cfg(tmp_path, ["trainer=ddp", "trainer.strategy=ddp_spawn"]))
    check_launch(_multirun_cfg(tmp_path, []))
