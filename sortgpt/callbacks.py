"""Lightning callbacks of the project: the seed's periodic training-loss log line."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning.pytorch as L
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
