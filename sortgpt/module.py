"""SortGPTModule: the LightningModule that trains and scores the hand-written GPT on the sorting task."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as L
import torch
from torch import nn

from sortgpt.data import SCORE_SPLITS, SortTask
from sortgpt.metrics import SortExactMatch, SortTokenAccuracy
from sortgpt.model import GPT, GPTConfig

DEFAULT_OPTIMIZER = {"lr": 5e-4, "betas": [0.9, 0.95], "weight_decay": 0.1}


class SortGPTModule(L.LightningModule):
    """Wraps ``GPT``. Vocabulary and block size come from the task, so they are never typed twice.

    All arguments are saved as hyperparameters: ``SortGPTModule.load_from_checkpoint(path)`` needs nothing
    else. ``optimizer`` holds AdamW's ``lr``, ``betas`` and ``weight_decay`` (decay on matmul weights only);
    ``warmup_steps`` and ``lr_schedule="cosine"`` (decaying to ``min_lr_ratio * lr`` at ``max_steps``) are
    off by default: the seed's learning rate is constant.
    """

    def __init__(
        self,
        length: int = 6,
        num_digits: int = 3,
        test_fraction: float = 0.25,
        n_layer: int = 4,
        n_head: int = 4,
        d_model: int = 128,
        dropout: float = 0.1,
        bias: bool = True,
        attn_impl: str = "manual",
        compile: bool = False,
        optimizer: dict[str, Any] | None = None,
        warmup_steps: int = 0,
        lr_schedule: str = "constant",
        min_lr_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        optimizer = {**DEFAULT_OPTIMIZER, **(dict(optimizer) if optimizer else {})}
        optimizer["betas"] = [float(b) for b in optimizer["betas"]]
        self.save_hyperparameters()  # collects the arguments, with the optimizer completed above
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"model.lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.task = SortTask(length, num_digits, test_fraction)
        self.model = GPT(GPTConfig(
            vocab_size=self.task.vocab_size, block_size=self.task.block_size, n_layer=n_layer,
            n_head=n_head, d_model=d_model, dropout=dropout, bias=bias, attn_impl=attn_impl,
        ))
        self.val_exact_match = SortExactMatch()
        self.val_token_acc = SortTokenAccuracy()
        self.score_exact_match = nn.ModuleList([SortExactMatch() for _ in SCORE_SPLITS])  # by loader
        self.scores: dict[str, tuple[int, int]] = {}  # split -> (correct, total) of the last test run

    # ----------------------------------------------------------------------------------------- inference
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self.model(idx, targets)

    @torch.no_grad()
    def sort(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's sorted version (B, length) of ``inputs`` (B, length): greedy, KV-cached."""
        L_ = self.task.length
        return self.model.generate(inputs.to(self.device), L_)[:, L_:]

    # ------------------------------------------------------------------------------------------ training
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        _, loss = self.model(x, y)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        (inputs,) = batch
        x, y = self.task.encode(inputs)
        _, loss = self.model(x, y)  # teacher-forced
        preds = self.sort(inputs)
        target = self.task.solve(inputs)
        self.val_exact_match.update(preds, target)
        self.val_token_acc.update(preds, target)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=inputs.size(0), sync_dist=True)
        self.log("val/exact_match", self.val_exact_match, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/token_acc", self.val_token_acc, on_step=False, on_epoch=True)

    def test_step(self, batch: list[torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        (inputs,) = batch
        self.score_exact_match[dataloader_idx].update(self.sort(inputs), self.task.solve(inputs))

    def on_test_epoch_end(self) -> None:
        for split, metric in zip(SCORE_SPLITS, self.score_exact_match, strict=True):
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            if metric.update_count == 0 and not distributed:  # every rank must join the reduction
                continue
            value = metric.compute()  # reduced across processes
            self.scores[split] = metric.last_counts
            self.log(f"{split}/exact_match", value)
            metric.reset()

    # ---------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with weight decay on matmul weights only (not biases, LayerNorm or embeddings)."""
        opt_cfg = self.hparams.optimizer
        decay, no_decay = [], []
        for module in self.model.modules():
            for name, p in module.named_parameters(recurse=False):
                (decay if isinstance(module, nn.Linear) and name == "weight" else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": opt_cfg["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        fused = self.device.type == "cuda"
        opt = torch.optim.AdamW(groups, lr=opt_cfg["lr"], betas=tuple(opt_cfg["betas"]), fused=fused)
        warmup = self.hparams.warmup_steps
        if warmup <= 0 and self.hparams.lr_schedule == "constant":
            return {"optimizer": opt}
        total = self.trainer.max_steps if self.trainer is not None and self.trainer.max_steps > 0 else 0
        floor = self.hparams.min_lr_ratio
        cosine = self.hparams.lr_schedule == "cosine" and total > warmup

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = min(1.0, (step - warmup) / (total - warmup))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_model(self) -> None:
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.model.compile()
            self._compiled = True

