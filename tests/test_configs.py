"""Every config composes and instantiates; the defaults are the seed's reference run."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from sortgpt.data import SortDataModule
from sortgpt.module import SortGPTModule
from sortgpt.utils import instantiate_all
from tests.conftest import CONFIG_DIR, compose_cfg


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _instantiate(cfg, trainer: bool = True):
    data = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_all(cfg.get("callbacks"))
    loggers = instantiate_all(cfg.get("logger"))
    assert isinstance(data, SortDataModule) and isinstance(model, SortGPTModule)
    if trainer:
        hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return data, model


def test_defaults_are_the_seed_reference(tmp_path):
    cfg = compose_cfg("train.yaml", [], tmp_path)
    assert cfg.seed == 42
    assert (cfg.data.length, cfg.data.num_digits, cfg.data.batch_size) == (6, 3, 64)
    m = cfg.model
    assert (m.n_layer, m.n_head, m.d_model, m.dropout, m.optimizer.lr) == (4, 4, 128, 0.1, 5e-4)
    assert m.lr_schedule == "constant" and m.warmup_steps == 0
    assert cfg.trainer.max_steps == 2000 and cfg.trainer.gradient_clip_val == 1.0
    data, model = _instantiate(cfg)
    assert model.model.num_parameters() == 795_136
    assert model.task.block_size == 11 and model.model.config.vocab_size == 3
    assert str(cfg.trainer.precision) == "32"


def test_seed_reference_experiment_equals_defaults(tmp_path):
    base = compose_cfg("train.yaml", [], tmp_path)
    ref = compose_cfg("train.yaml", ["experiment=seed_reference"], tmp_path)
    for key in ("data", "model", "trainer"):
        assert OmegaConf.to_container(base[key]) == OmegaConf.to_container(ref[key]), key
    assert base.seed == ref.seed


@pytest.mark.parametrize("experiment", _choices("experiment"))
def test_experiments_instantiate(tmp_path, experiment):
    _instantiate(compose_cfg("train.yaml", [f"experiment={experiment}"], tmp_path))


@pytest.mark.parametrize("debug", _choices("debug"))
def test_debug_presets_instantiate(tmp_path, debug):
    _instantiate(compose_cfg("train.yaml", [f"debug={debug}"], tmp_path))


@pytest.mark.parametrize("trainer", _choices("trainer"))
def test_trainer_configs(tmp_path, trainer):
    cfg = compose_cfg("train.yaml", [f"trainer={trainer}"], tmp_path)
    needs_gpu = cfg.trainer.accelerator == "gpu"
    _instantiate(cfg, trainer=not needs_gpu or torch.cuda.is_available())


@pytest.mark.parametrize("logger", _choices("logger"))
def test_logger_configs(tmp_path, logger):
    cfg = compose_cfg("train.yaml", [f"logger={logger}"], tmp_path)
    assert instantiate_all(cfg.logger)


def test_user_facing_overrides(tmp_path):
    cfg = compose_cfg("train.yaml", [
        "model.n_layer=6", "model.n_head=8", "model.d_model=64", "model.dropout=0.2",
        "model.optimizer.lr=1e-3", "data.length=5", "data.num_digits=4", "data.batch_size=32",
        "trainer.max_steps=10", "trainer.precision=bf16-mixed", "seed=7", "trainer.devices=1",
    ], tmp_path)
    data, model = _instantiate(cfg)
    assert model.model.config.n_layer == 6 and model.model.config.n_head == 8
    assert model.task.length == 5 and model.model.config.vocab_size == 4
    assert model.model.config.block_size == 9  # from the task, never typed twice
    assert model.hparams.optimizer["lr"] == 1e-3
    assert data.hparams.batch_size == 32 and data.hparams.seed == 7


def test_eval_config_composes(tmp_path):
    cfg = compose_cfg("eval.yaml", ["ckpt_path=some.ckpt"], tmp_path)
    assert cfg.ckpt_path == "some.ckpt" and cfg.data.length is None
    hydra.utils.instantiate(cfg.trainer)


def test_run_folders_are_under_outputs_and_distinct():
    cfg = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "hydra" / "default.yaml"))
    assert cfg["run"]["dir"].startswith("${paths.log_dir}/${task_name}/runs/")
    assert cfg["sweep"]["dir"].startswith("${paths.log_dir}/${task_name}/multiruns/")
    assert "%f" in cfg["run"]["dir"] and "%f" in cfg["sweep"]["dir"]  # two runs never share a folder
    paths = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "paths" / "default.yaml"))
    assert paths["log_dir"] == "${paths.root_dir}/outputs"
