"""Lightning callbacks of the project: the seed's periodic training-loss log line, attention maps."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
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


class AttentionMaps(L.Callback):
    """At each validation, draw per-layer x per-head attention heatmaps for a few fixed held-out examples.

    Each example becomes one figure (rows: layers, columns: heads; token labels on both axes, queries down,
    keys across) logged to TensorBoard with ``add_figure`` under ``attention/example_<i>``; at the end of
    training the last drawing of each example is also written as ``attention_maps/example_<i>.png`` in the
    run folder. The weights come from the manual attention path: ``record_attention`` is switched on for
    this callback's own forward pass only (an sdpa model switches to manual for it and back), so training
    and validation steps run exactly as without the callback. ``enabled=false`` makes it a no-op.
    """

    def __init__(self, num_examples: int = 2, enabled: bool = True, dirname: str = "attention_maps") -> None:
        if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
            raise ValueError(f"callbacks.attention_maps.num_examples must be a positive integer, "
                             f"got {num_examples!r}")
        self.num_examples = num_examples
        self.enabled = enabled
        self.dirname = dirname
        self._figures: dict[str, Any] = {}

    @staticmethod
    def attention_weights(pl_module: L.LightningModule, inputs: Any) -> tuple[Any, list[Any]]:
        """Teacher-forced pass of ``inputs`` (B, length): the model input x (B, T) and, per layer, the
        attention weights (B, n_head, T, T)."""
        import torch

        gpt = pl_module.model
        x, _ = pl_module.task.encode(inputs.to(pl_module.device))
        attns = [block.attn for block in gpt.transformer.h]
        was_training = gpt.training
        gpt.eval()
        try:
            for attn in attns:
                attn.record_attention = True  # takes the manual path and keeps .attention
            with torch.no_grad():
                gpt(x)
            weights = [attn.attention.float().cpu() for attn in attns]
        finally:
            for attn in attns:
                attn.record_attention = False
                attn.attention = None
            gpt.train(was_training)
        return x.cpu(), weights

    @staticmethod
    def draw(tokens: list[int], weights: list[Any], length: int, title: str = "") -> Any:
        """One matplotlib figure: a grid of heatmaps, layers down, heads across, for one example."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        n_layer, n_head = len(weights), weights[0].size(0)
        T = len(tokens)
        # input digits, then the sorted ones the model has been given so far (marked with ')
        labels = [str(t) for t in tokens[:length]] + [f"{t}'" for t in tokens[length:]]
        fig, axes = plt.subplots(n_layer, n_head, figsize=(2.2 * n_head + 0.6, 2.2 * n_layer + 0.6),
                                 squeeze=False)
        for i in range(n_layer):
            for h in range(n_head):
                ax = axes[i][h]
                ax.imshow(weights[i][h, :T, :T].numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
                ax.set_xticks(range(T), labels, fontsize=6)
                ax.set_yticks(range(T), labels, fontsize=6)
                ax.tick_params(length=0)
                if i == 0:
                    ax.set_title(f"head {h}", fontsize=8)
                if h == 0:
                    ax.set_ylabel(f"layer {i}\nquery", fontsize=8)
                if i == n_layer - 1:
                    ax.set_xlabel("key", fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        return fig

    def _examples(self, pl_module: L.LightningModule) -> Any:
        """Fixed held-out examples: the first ``num_examples`` of a seeded draw from the test split."""
        import torch

        gen = torch.Generator().manual_seed(1234)
        return pl_module.task.sample(self.num_examples, "test", gen)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking or not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        inputs = self._examples(pl_module)
        x, weights = self.attention_weights(pl_module, inputs)
        writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        for plt_fig in self._figures.values():
            plt.close(plt_fig)
        self._figures = {}
        for b in range(x.size(0)):
            tag = f"attention/example_{b}"
            fig = self.draw(x[b].tolist(), [w[b] for w in weights], pl_module.task.length,
                            f"input {inputs[b].tolist()} - step {trainer.global_step}")
            for writer in writers:
                writer.add_figure(tag, fig, global_step=trainer.global_step, close=False)
            self._figures[tag] = fig

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._figures or not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt

        out = Path(trainer.default_root_dir) / self.dirname
        out.mkdir(parents=True, exist_ok=True)
        for tag, fig in self._figures.items():
            fig.savefig(out / f"{tag.split('/')[-1]}.png", dpi=100)
            plt.close(fig)
        log.info("attention maps written to %s", out)
        self._figures = {}
