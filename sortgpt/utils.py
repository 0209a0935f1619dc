"""Small helpers for the entry points: the config tree, and instantiating lists of callbacks/loggers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

CONFIG_ORDER = ("data", "model", "callbacks", "logger", "trainer", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig, order: Sequence[str] = CONFIG_ORDER) -> None:
    """Print the resolved config as a rich tree (one branch per group) and record it in the log file."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order and k != "hydra"]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    log.info("Configurations:\n%s", OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, keys), resolve=True))


def instantiate_all(cfg: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` of a config group such as ``callbacks`` or ``logger``."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(conf) for conf in cfg.values()
            if isinstance(conf, DictConfig) and "_target_" in conf]


CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def compose_config(config_name: str, overrides: list[str], output_dir: str | Path) -> DictConfig:
    """Compose ``configs/<config_name>`` in-process (no Hydra main), writing under ``output_dir``.

    For tests, benchmarks and notebooks: the result can be passed to ``pipeline.train``/``evaluate``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name=config_name, return_hydra_config=True, overrides=overrides)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
            cfg.hydra.job.name = config_name.removesuffix(".yaml")
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir)
    GlobalHydra.instance().clear()
    return cfg
