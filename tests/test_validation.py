"""Config validation: each bad value is refused before anything is built, naming the key and the value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sortgpt.validation import ConfigError, SortGPTError, validate_config
from tests.conftest import ROOT, compose_cfg

# (override, what the message must name)
BAD = [
    (["model.d_model=100", "model.n_head=3"], "model.d_model=100 is not divisible by model.n_head=3"),
    (["model.n_layer=0"], "model.n_layer must be a positive integer, got 0"),
    (["model.n_head=-2"], "model.n_head must be a positive integer, got -2"),
    (["model.d_model=0"], "model.d_model must be a positive integer, got 0"),
    (["model.n_layer=abc"], "model.n_layer must be a positive integer, got 'abc'"),
    (["model.n_layer=2.5"], "model.n_layer must be a positive integer, got 2.5"),
    (["data.batch_size=0"], "data.batch_size must be a positive integer, got 0"),
    (["data.eval_batch_size=-1"], "data.eval_batch_size must be a positive integer, got -1"),
    (["trainer.max_steps=0"], "trainer.max_steps must be a positive integer"),
    (["trainer.max_steps=-1"], "got -1"),
    (["model.dropout=1.0"], "model.dropout must be in [0, 1), got 1.0"),
    (["model.dropout=-0.1"], "model.dropout must be in [0, 1), got -0.1"),
    (["model.optimizer.lr=0"], "model.optimizer.lr must be a number > 0, got 0"),
    (["model.optimizer.lr=-1e-3"], "model.optimizer.lr must be a number > 0, got -0.001"),
    (["model.optimizer.lr=nan"], "model.optimizer.lr must be a number > 0, got nan"),
    (["data.length=0"], "data.length must be an integer >= 1, got 0"),
    (["data.num_digits=1"], "data.num_digits must be an integer >= 2, got 1"),
    (["data.test_fraction=0"], "data.test_fraction must be in (0, 1)"),
    (["data.test_fraction=1.5"], "data.test_fraction must be in (0, 1)"),
    (["data.length=1", "data.num_digits=2"], "data.test_fraction=0.25: the"),  # 2 sequences: a split is empty
    (["trainer.precision=16-mixed", "trainer.accelerator=cpu"],
     "trainer.precision=16-mixed cannot run on the CPU"),
    (["trainer.precision=8"], "trainer.precision=8 is not one of Lightning's values"),
    (["trainer.accelerator=gpu"], "trainer.accelerator=gpu but no GPU is visible"),
    (["model.attn_impl=flash"], "model.attn_impl must be 'manual' or 'sdpa', got 'flash'"),
    (["seed=abc"], "seed must be an integer, got 'abc'"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_is_named(overrides, message, tmp_path):
    cfg = compose_cfg("train.yaml", overrides, tmp_path)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert message in str(info.value)
    assert isinstance(info.value, SortGPTError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("overrides", [
    [], ["experiment=fast_cpu"], ["trainer.precision=bf16-mixed", "trainer.accelerator=cpu"],
    ["trainer.precision=32"], ["debug=fast_dev_run"], ["debug=overfit"],
    ["data.length=12", "data.num_digits=10"],
])
def test_good_configs_pass(overrides, tmp_path):
    validate_config(compose_cfg("train.yaml", overrides, tmp_path))


def test_eval_config_checks_only_what_is_set(tmp_path):
    validate_config(compose_cfg("eval.yaml", ["ckpt_path=x.ckpt"], tmp_path))  # data.* null: from the ckpt
    with pytest.raises(ConfigError, match=r"data.num_digits must be an integer >= 2, got 1"):
        validate_config(compose_cfg("eval.yaml", ["ckpt_path=x.ckpt", "data.num_digits=1"], tmp_path))


def _cli(script: str, *overrides: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.d_model=100", "model.n_head=3"], "model.d_model=100 is not divisible by model.n_head=3"),
    (["trainer.precision=16-mixed"], "trainer.precision=16-mixed cannot run on the CPU"),
])
def test_command_line_gives_a_short_message_and_nonzero_exit(overrides, message, tmp_path):
    """As a new user would type it: exit status 1, a few lines naming the key, no traceback, no run."""
    out = tmp_path / "outputs"
    proc = _cli("train.py", *overrides, f"paths.log_dir={out}", cwd=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert message in proc.stderr
    assert "Traceback" not in text and len(text.strip().splitlines()) <= 4, text
    # the run folder holds the message in its log file and nothing else was started
    (log_file,) = out.glob("train/runs/*/train.log")
    assert message in log_file.read_text()
    assert not list(out.glob("train/runs/*/checkpoints"))


def test_unknown_key_stays_hydras_error(tmp_path):
    proc = _cli("train.py", "model.n_layerz=2", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Could not override 'model.n_layerz'" in proc.stderr
