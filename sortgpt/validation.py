"""Check a composed config before any data or model is built, and report a user's mistake in a few lines.

``validate_config(cfg)`` raises ``ConfigError`` (a ``SortGPTError``) naming the key and the bad value.
``exit_on_user_error`` turns a ``SortGPTError`` in ``train.py``/``eval.py`` into a short message on stderr and
exit status 1 instead of a multi-page traceback; any other exception is still raised with its traceback,
since that is a bug to report, not a typo.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from omegaconf import DictConfig

log = logging.getLogger("sortgpt")

# Lightning's precision flags (lightning.fabric.plugins.precision.precision), with its aliases
PRECISION_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}
PRECISIONS = ("16-true", "16-mixed", "bf16-true", "bf16-mixed", "32-true", "64-true",
              "transformer-engine", "transformer-engine-float16")
CPU_PRECISIONS = ("bf16-true", "bf16-mixed", "32-true", "64-true", "16-true")


class SortGPTError(Exception):
    """A mistake of the user (a config value, a file): reported as a short message, never a traceback."""


class ConfigError(SortGPTError, ValueError):
    """A config value that cannot work; the message names the key and the value."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(cfg: DictConfig, group: str, key: str) -> None:
    value = cfg[group].get(key)
    if value is not None and (not _is_int(value) or value < 1):
        raise ConfigError(f"{group}.{key} must be a positive integer, got {value!r}")


def _check_model(model: DictConfig) -> None:
    for key in ("n_layer", "n_head", "d_model"):
        value = model.get(key)
        if not _is_int(value) or value < 1:
            raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")
    if model.d_model % model.n_head:
        near = model.n_head * max(1, model.d_model // model.n_head)
        raise ConfigError(
            f"model.d_model={model.d_model} is not divisible by model.n_head={model.n_head}: each head gets "
            f"d_model / n_head channels (try model.d_model={near})"
        )
    dropout = model.get("dropout", 0.0)
    if not _is_number(dropout) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}")
    optimizer = model.get("optimizer") or {}
    lr = optimizer.get("lr", 1.0)
    if not _is_number(lr) or not lr > 0:  # also refuses nan
        raise ConfigError(f"model.optimizer.lr must be a number > 0, got {lr!r}")
    attn = model.get("attn_impl", "manual")
    if attn not in ("manual", "sdpa"):
        raise ConfigError(f"model.attn_impl must be 'manual' or 'sdpa', got {attn!r}")
    schedule = model.get("lr_schedule", "constant")
    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"model.lr_schedule must be 'constant' or 'cosine', got {schedule!r}")


def _check_data(data: DictConfig) -> None:
    length, num_digits, fraction = data.get("length"), data.get("num_digits"), data.get("test_fraction")
    if length is not None and (not _is_int(length) or length < 1):
        raise ConfigError(f"data.length must be an integer >= 1, got {length!r}")
    if num_digits is not None and (not _is_int(num_digits) or num_digits < 2):
        raise ConfigError(f"data.num_digits must be an integer >= 2, got {num_digits!r}")
    if fraction is not None and (not _is_number(fraction) or not 0.0 < fraction < 1.0):
        raise ConfigError(f"data.test_fraction must be in (0, 1) (exclusive), got {fraction!r}")
    if None not in (length, num_digits, fraction) and num_digits**length <= 1_000_000:
        from sortgpt.data import SortTask  # small spaces only: the split is listed to check it

        try:
            SortTask(length, num_digits, fraction)
        except ValueError as err:
            raise ConfigError(f"data.test_fraction={fraction!r}: {err}") from None


def resolve_accelerator(accelerator: Any) -> str:
    """The device kind Lightning will use for ``trainer.accelerator``: ``cpu``, ``cuda`` or ``mps``."""
    name = str(accelerator).lower() if accelerator is not None else "auto"
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name in ("auto", "gpu"):
        if torch.cuda.is_available():
            return "cuda"
        if has_mps:
            return "mps"
        if name == "gpu":
            raise ConfigError("trainer.accelerator=gpu but no GPU is visible on this machine "
                              "(use trainer.accelerator=cpu or trainer=cpu)")
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=cuda but no CUDA GPU is visible on this machine")
    if name == "mps" and not has_mps:
        raise ConfigError("trainer.accelerator=mps but MPS is not available on this machine")
    return name


def _check_trainer(trainer: DictConfig) -> None:
    steps = trainer.get("max_steps")
    if not trainer.get("fast_dev_run") and (not _is_int(steps) or steps < 1):
        raise ConfigError(f"trainer.max_steps must be a positive integer (the training data is endless), "
                          f"got {steps!r}")
    device = resolve_accelerator(trainer.get("accelerator", "auto"))
    raw = trainer.get("precision", "32-true")
    precision = PRECISION_ALIASES.get(str(raw), str(raw))
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={raw!r} is not one of Lightning's values: "
                          f"32, bf16-mixed, 16-mixed, 16-true, bf16-true, 64")
    if device == "cpu" and precision not in CPU_PRECISIONS:
        raise ConfigError(f"trainer.precision={raw} cannot run on the CPU (fp16 mixed precision needs a "
                          f"GPU); use trainer.precision=bf16-mixed or 32")
    if device == "cuda" and precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"trainer.precision={raw} needs a GPU with bfloat16 support; "
                          f"use trainer.precision=16-mixed or 32")


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first value of ``cfg`` that cannot work; check nothing that is absent.

    Runs before data or model are built, so a typo costs no time. Checks ``model.*`` (sizes, dropout, lr),
    ``data.*`` (task shape, batch sizes) and ``trainer.*`` (max_steps, a precision the accelerator can run).
    """
    if cfg.get("model") is not None:
        _check_model(cfg.model)
    if cfg.get("data") is not None:
        _check_data(cfg.data)
        for key in ("batch_size", "val_size", "score_size", "eval_batch_size"):
            _positive_int(cfg, "data", key)
    if cfg.get("trainer") is not None:
        _check_trainer(cfg.trainer)
    seed = cfg.get("seed")
    if seed is not None and not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")


def _to_log_file(message: str) -> None:
    """Record ``message`` in the run's log file only (stderr gets it once, from the caller)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Turn a ``SortGPTError`` into ``error: <message>`` on stderr (and the log file) and exit status 1.

    In a multirun the error is re-raised after the message, so the sweeper marks that one job failed.
    """
    try:
        yield
    except SortGPTError as err:
        _to_log_file(str(err))
        print(f"error: {err}", file=sys.stderr, flush=True)
        if _in_sweep():
            raise  # a sweeper records the failed job and goes on with the others
        raise SystemExit(1) from None


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
