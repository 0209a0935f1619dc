"""Lightning callbacks of the project: the seed's periodic training-loss log line."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("sortgpt.train")


class TrainLossLog(L.Callback):
    """Every ``every_n_steps`` steps, log the seed's line: ``iter_dt 20.87ms; iter 100: train loss 0.02907``.

    ``iter_dt`` is the mean wall time of the steps since the previous line. The loss is read from the
    device only on those steps, so logging adds no per-step host synchronisation.
    """

    def __init__(self, every_n_steps: int = 100) -> None:
        self.every_n_steps = every_n_steps
        self._t0: float | None = None
        self._last_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = None

    @rank_zero_only
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step = trainer.global_step - 1  # the optimiser step just taken, counted from 0 as the seed does
        now = time.perf_counter()
        if self._t0 is None:
            dt = 0.0
        elif step % self.every_n_steps != 0:
            return
        else:
            dt = (now - self._t0) / max(1, step - self._last_step)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        log.info("iter_dt %.2fms; iter %d: train loss %.5f", dt * 1000, step, float(loss))
        self._t0, self._last_step = now, step


class StepSeed(L.Callback):
    """Seed torch's RNG (CPU and CUDA) from ``(seed, global_step, rank)`` before every training step.

    Training randomness (dropout) then depends only on the step, as the data stream does, so a resumed
    run draws exactly what the uninterrupted run would have drawn, whatever else consumed random numbers
    in between (a new DataLoader iterator, validation). ``seed=None`` leaves the RNG alone.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.seed is not None:
            torch.manual_seed((self.seed * 1_000_003 + trainer.global_step) * 64 + trainer.global_rank)


class FiniteLossGuard(L.Callback):
    """Stop training at the first non-finite training loss, naming its step, before anything saves it.

    The check stays on the device (no host sync) and is read every ``check_every_n_steps`` steps and before
    every checkpoint save; the step reported is the first bad one (counted from 0, as the loss log line).
    Raising ``NonFiniteError`` ends ``fit`` without a further checkpoint, so the last good one is kept.
    """

    def __init__(self, check_every_n_steps: int = 10) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None  # step of the first non-finite loss, -1 while none

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._first_bad = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        step = trainer.global_step - 1
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss.detach())
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)
        if trainer.global_step % self.check_every_n_steps == 0:
            self._check(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        self._check(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from sortgpt.checkpoint import NonFiniteError

        if self._first_bad is None or int(self._first_bad) < 0:
            return
        last = next((cb.last_model_path for cb in trainer.checkpoint_callbacks  # written before this step
                     if getattr(cb, "last_model_path", "") and os.path.isfile(cb.last_model_path)), "")
        lr = pl_module.hparams.get("optimizer", {}).get("lr") if hasattr(pl_module, "hparams") else None
        kept = f"the last good checkpoint is kept: {last}" if last else "no checkpoint had been saved yet"
        raise NonFiniteError(
            f"training loss became non-finite at iter {int(self._first_bad)}; training stopped and "
            f"{kept}.\nTry a smaller learning rate (model.optimizer.lr={lr}) or trainer.gradient_clip_val."
        )


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps only ``last.ckpt``: every ``every_n_train_steps`` and at the end of fit.

    Lightning's own ``on_train_end`` saves ``last`` only when no checkpoint was saved at all; here the final
    state is always saved, so ``last.ckpt`` of a finished run is its end state and a crash loses at most
    ``every_n_train_steps`` steps.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 100) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, monitor=None,
                         every_n_train_steps=every_n_train_steps)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
