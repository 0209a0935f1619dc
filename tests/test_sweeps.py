"""Multiruns through the real command line: each job in its own folder with log, events, checkpoints."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_two_job_multirun(tmp_path):
    cmd = [
        sys.executable, "train.py", "-m", "model.n_layer=1,2", "trainer.max_steps=50",
        "trainer.val_check_interval=25", "data.length=4", "data.full_eval=true", "model.d_model=32",
        "trainer.enable_progress_bar=false", "~callbacks.rich_progress_bar", f"paths.log_dir={tmp_path}",
        "task_name=sweep",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    sweeps = list((tmp_path / "sweep" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    for job, n_layer in zip(jobs, (1, 2), strict=True):
        log = (job / "sweep.log").read_text()
        assert f"n_layer: {n_layer}" in log  # the config is recorded
        assert "number of parameters:" in log and "iter 0: train loss" in log
        assert log.count("final score: ") == 2
        assert list((job / "tensorboard").glob("events.out.tfevents.*"))
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert (job / ".hydra" / "overrides.yaml").is_file()


def test_optuna_search_maximises_val_exact_match(tmp_path):
    import importlib.util

    import pytest
    import yaml

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        pytest.skip("hydra-optuna-sweeper is not installed (optional extra: pip install -e '.[sweep]')")
    cmd = [
        sys.executable, "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2", "trainer.max_steps=20", "trainer.val_check_interval=10",
        "data.length=4", "trainer.enable_progress_bar=false", "~callbacks.rich_progress_bar",
        f"paths.log_dir={tmp_path}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert 0.0 <= result["best_value"] <= 1.0
    assert "model.optimizer.lr" in result["best_params"]
    jobs = [p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()]
    assert len(jobs) == 2


def test_submitit_local_launcher_runs_each_job(two_job_multirun):
    import pytest

    sweep, launcher = two_job_multirun
    if launcher != "submitit_local":
        pytest.skip("hydra-submitit-launcher is not installed (optional extra: pip install -e '.[cluster]')")
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
    for job in ("0", "1"):
        log = (sweep / job / "sweep.log").read_text()
        assert log.count("final score: ") == 2
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
