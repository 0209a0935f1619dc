"""Safe checkpoints: clear errors for bad files, loading that never runs code, saving that never breaks one.

- ``load_checkpoint(path)`` reads a Lightning checkpoint with ``torch.load(weights_only=True)`` (tensors and
  plain containers only, plus the short allow-list ``SAFE_GLOBALS``), after checking that the file exists,
  is not empty and is an intact zip archive (its CRCs are checked: torch itself does not). Every failure is
  a ``CheckpointError`` that names the file.
- ``check_compatible(checkpoint, path, cfg)`` refuses a checkpoint whose task or model shape disagrees
  with the config, naming each key and both values.
- ``SafeCheckpointIO`` is the Trainer's checkpoint plugin (``trainer.plugins`` in ``configs/trainer``):
  Lightning's resume, ``trainer.test(ckpt_path=...)`` and every save go through it. It saves to a temporary
  file in the same folder, fsyncs it and ``os.replace``s it over the target, so a crash while saving leaves
  the previous ``last.ckpt`` whole; and it refuses to save weights that are not finite.
- ``resolve_ckpt_path`` turns ``ckpt_path=latest`` (or a run folder) into a checkpoint file.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sortgpt.validation import SortGPTError

log = logging.getLogger("sortgpt")

# What a Lightning checkpoint of this project may hold besides tensors and plain containers: Lightning's
# hyper-parameter dict (a plain dict subclass). Nothing that can run code when unpickled.
SAFE_GLOBALS: list[Any] = [AttributeDict]
torch.serialization.add_safe_globals(SAFE_GLOBALS)

LATEST = ("latest", "last")  # ckpt_path values that mean "the newest last.ckpt of this task's runs"
TASK_KEYS = ("length", "num_digits", "test_fraction")  # the task shape: data.* and model.* agree on them
MODEL_KEYS = ("n_layer", "n_head", "d_model", "bias")  # what the weights' shapes and meaning depend on


class CheckpointError(SortGPTError, ValueError):
    """A checkpoint file that cannot be used: missing, empty, damaged, unsafe, or of another task."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load the Lightning checkpoint at ``path`` without running code from it; ``CheckpointError`` if bad."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    if p.is_dir():
        raise CheckpointError(f"checkpoint {str(p)!r} is a folder, not a file "
                              f"(its checkpoints are in {str(p / 'checkpoints')!r})")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {str(p)!r} is empty (0 bytes): it was never written completely")
    try:
        with zipfile.ZipFile(p) as archive:
            bad = archive.testzip()  # reads every record and checks its CRC
    except zipfile.BadZipFile:
        raise CheckpointError(f"checkpoint {str(p)!r} ({size} bytes) is truncated or not a PyTorch "
                              f"checkpoint (not a complete zip archive)") from None
    except (OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"checkpoint {str(p)!r} cannot be read: {_first_line(err)}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupted: record {bad!r} fails its checksum")
    try:
        checkpoint = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"checkpoint {str(p)!r} holds an object outside the allowed types{what}; it is not loaded, "
            f"since unpickling it could run code from the file"
        ) from None
    except Exception as err:  # torch raises many types for damaged files
        raise CheckpointError(f"checkpoint {str(p)!r} is corrupted: {_first_line(err)}") from None
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{str(p)!r} is a PyTorch file but not a Lightning checkpoint (no state_dict)")
    if not isinstance(checkpoint.get("hyper_parameters"), Mapping):
        raise CheckpointError(f"checkpoint {str(p)!r} has no hyper_parameters: not written by train.py")
    return dict(checkpoint)


def check_compatible(checkpoint: Mapping[str, Any], path: str | os.PathLike, cfg: Any) -> None:
    """Refuse ``checkpoint`` when a task or model key set in ``cfg`` (``data.*``, ``model.*``) disagrees.

    Keys that are absent or null in ``cfg`` are not compared (eval.py takes them from the checkpoint).
    Every disagreement is listed, as overrides that would make the config match.
    """
    saved = checkpoint.get("hyper_parameters") or {}
    wrong: list[str] = []
    for group, keys in (("data", TASK_KEYS), ("model", TASK_KEYS + MODEL_KEYS)):
        section = cfg.get(group) if cfg is not None else None
        if not section:
            continue
        for key in keys:
            value, want = section.get(key), saved.get(key)
            if value is None or want is None or value == want:
                continue
            fix = f"{group}.{key}={want}"
            if fix not in wrong and not (group == "model" and f"data.{key}={want}" in wrong):
                wrong.append(fix)
                log.debug("%s.%s=%r disagrees with the checkpoint (%r)", group, key, value, want)
    if wrong:
        mine = ", ".join(f"{w.split('=')[0]}={_cfg_value(cfg, w.split('=')[0])}" for w in wrong)
        raise CheckpointError(
            f"checkpoint {str(path)!r} was trained with another task or model than this config: "
            f"{mine} {'disagrees' if len(wrong) == 1 else 'disagree'} with the checkpoint.\n"
            f"To use it, set: {' '.join(wrong)}"
        )


def _cfg_value(cfg: Any, dotted: str) -> Any:
    group, key = dotted.split(".", 1)
    return cfg[group][key]


def resolve_ckpt_path(ckpt_path: Any, runs_dir: str | os.PathLike) -> str | None:
    """The checkpoint file that ``ckpt_path`` names.

    ``latest`` (or ``last``) is the newest ``<runs_dir>/*/checkpoints/last.ckpt`` (by modification time);
    a run folder stands for its ``checkpoints/last.ckpt``; anything else is returned unchanged.
    """
    if ckpt_path is None or ckpt_path == "":
        return None
    text = str(ckpt_path)
    if text in LATEST:
        candidates = sorted(Path(runs_dir).glob("*/checkpoints/last.ckpt"), key=lambda f: f.stat().st_mtime)
        if not candidates:
            raise CheckpointError(f"ckpt_path={text}: no run under {str(runs_dir)!r} has a "
                                  f"checkpoints/last.ckpt to resume")
        log.info("ckpt_path=%s resolves to %s", text, candidates[-1])
        return str(candidates[-1])
    p = Path(text)
    if p.is_dir() and (p / "checkpoints" / "last.ckpt").is_file():
        return str(p / "checkpoints" / "last.ckpt")
    return text


def assert_finite_weights(state_dict: Mapping[str, Any], where: str) -> None:
    """Raise ``NonFiniteError`` if a floating-point tensor of ``state_dict`` holds nan or inf."""
    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteError(f"{where}: the weights are not finite ({', '.join(bad[:3])}"
                             f"{', ...' if len(bad) > 3 else ''}); nothing was saved")


class NonFiniteError(SortGPTError, FloatingPointError):
    """Training produced a non-finite loss or non-finite weights."""


class SafeCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that saves atomically and durably and loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        """Write a temporary file next to ``path``, fsync, then ``os.replace``: the old file stays whole."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        assert_finite_weights(checkpoint.get("state_dict", {}),
                              f"refusing to save {str(path)!r} at step {checkpoint.get('global_step')}")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Callable | Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """``load_checkpoint`` above: ``weights_only`` is always on, whatever the caller asks."""
        return load_checkpoint(path, map_location=map_location)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
