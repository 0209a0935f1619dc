"""Running on more than one process (``trainer=ddp``): one run folder, rank-zero output, exact counts.

Lightning's ``ddp`` strategy starts the other ranks by re-running the command line (``train.py`` with
the same overrides, plus ``hydra.run.dir=<rank zero's folder>`` and ``hydra.output_subdir=null``), so
every rank composes the same config and writes into one run folder; only rank zero keeps the log file,
the console lines, checkpoints, TensorBoard events and PNGs. Scoring uses a sampler that gives each
held-out sequence to exactly one rank (Lightning's ``DistributedSampler`` would pad with repeats), and
``SortExactMatch`` sums its counts over ranks, so the ``a/b`` lines are the same as on one process.
"""

from __future__ import annotations

import logging
import os
import warnings

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset

from sortgpt.validation import ConfigError

# the final scores are logged as values SortExactMatch has already summed over ranks: nothing to sync
warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed setting.*")

MULTIRUN_DDP_MESSAGE = (
    "trainer.strategy={strategy} with trainer.devices={devices} cannot run inside a Hydra multirun on "
    "the basic launcher: DDP starts its other processes by re-running the command line, which would "
    "re-run the whole sweep. Use instead: one `python train.py trainer=ddp ...` per configuration, "
    "a multirun with trainer.strategy=auto (one process per job), or on a SLURM cluster "
    "`-m hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node=<devices> trainer=ddp`, where "
    "SLURM starts the processes."
)


def process_rank() -> int:
    """This process's global rank as the launchers set it in the environment (0 when not distributed)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _relaunches(cfg: DictConfig) -> tuple[bool, str, object]:
    trainer = cfg.get("trainer") or {}
    strategy = trainer.get("strategy", "auto")
    devices = trainer.get("devices", 1)
    name = strategy if isinstance(strategy, str) else str(strategy.get("_target_", ""))
    ddp_like = name.lower().startswith("ddp") or name.endswith("DDPStrategy")
    spawned = any(s in name.lower() for s in ("spawn", "fork", "notebook"))
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    many = (isinstance(devices, int) and devices not in (0, 1)) or (
        not isinstance(devices, (int, str)) and len(devices) > 1) or trainer.get("num_nodes", 1) > 1
    return ddp_like and not spawned and many, name, devices


def check_launch(cfg: DictConfig) -> None:
    """Refuse up front a DDP multirun that Lightning would re-launch as a whole sweep per process."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    if os.environ.get("SLURM_NTASKS", "1") not in ("", "1"):  # processes started by SLURM: no re-launch
        return
    relaunch, strategy, devices = _relaunches(cfg)
    if relaunch:
        raise ConfigError(MULTIRUN_DDP_MESSAGE.format(strategy=strategy, devices=devices))


def quiet_other_ranks() -> None:
    """On ranks other than zero: no log file (rank zero writes it) and only warnings on the console."""
    if process_rank() == 0:
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    for name in ("", "sortgpt", "lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def score_loader(inputs: torch.Tensor, batch_size: int) -> DataLoader:
    """A loader over ``inputs`` that, in a distributed run, gives every row to exactly one rank.

    Lightning leaves a loader that already has a ``DistributedSampler`` alone; this one
    (``UnrepeatedDistributedSampler``) does not pad, so no sequence is scored twice and none is dropped.
    """
    dataset = TensorDataset(inputs)
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)
