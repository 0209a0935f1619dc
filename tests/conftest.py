"""Shared test set-up: CPU only, configs composed in-process (as lightning-hydra-template's tests do)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig

from sortgpt.utils import compose_config

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(ROOT / "configs")

# a small model on the length-4 task: learns to sort every held-out sequence in a few hundred steps
TINY = [
    "data.length=4", "data.batch_size=64", "data.full_eval=true", "data.eval_batch_size=256",
    "model.n_layer=2", "model.n_head=2", "model.d_model=48", "model.dropout=0.0",
    "model.optimizer.lr=3e-3", "trainer.max_steps=400", "trainer.val_check_interval=100",
    "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "~callbacks.rich_progress_bar",
    "trainer.enable_model_summary=false",
]


def compose_cfg(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose ``configs/<config_name>`` with ``overrides``, writing under ``output_dir``."""
    return compose_config(config_name, overrides, output_dir)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One real, short training of a small model through train(): shared by the tests that read it."""
    from sortgpt.pipeline import train

    out = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_cfg("train.yaml", TINY, out)
    metrics, objects = train(cfg)
    return {"cfg": cfg, "metrics": metrics, "out": out, **objects}


@pytest.fixture(scope="session")
def two_job_multirun(tmp_path_factory):
    """A real two-job multirun (model.n_layer=1,2) through train.py: on the submitit_local launcher when
    hydra-submitit-launcher is installed (each job in its own process, as on a cluster), else Hydra's
    basic launcher. Returns (multirun folder, launcher name)."""
    import importlib.util
    import subprocess
    import sys

    has_submitit = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
    launcher = "submitit_local" if has_submitit else "basic"
    out = tmp_path_factory.mktemp("multirun")
    cmd = [
        sys.executable, "train.py", "-m", f"hydra/launcher={launcher}", "model.n_layer=1,2",
        "trainer.max_steps=60", "trainer.val_check_interval=20", "data.length=3", "data.full_eval=true",
        "data.test_fraction=0.3", "model.d_model=32", "model.n_head=2", "model.dropout=0.0",
        "model.optimizer.lr=3e-3", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "~callbacks.rich_progress_bar", "trainer.enable_model_summary=false",
        "callbacks.attention_maps.enabled=false", f"paths.log_dir={out}", "task_name=sweep",
    ]
    if launcher == "submitit_local":
        cmd.append("hydra.launcher.timeout_min=10")
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    (sweep,) = (out / "sweep" / "multiruns").iterdir()
    return sweep, launcher
