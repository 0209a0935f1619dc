"""torchmetrics metrics for sorting: exact match of whole sequences and per-token accuracy."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class _SortCounts(Metric):
    """A fraction ``correct / total`` whose two counts are summed across processes."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.last_counts: tuple[int, int] = (0, 0)

    def _counts(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds`` and ``target``: (B, length) token ids."""
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
        correct, total = self._counts(preds, target)
        self.correct += correct
        self.total += total

    def compute(self) -> torch.Tensor:
        self.last_counts = (int(self.correct), int(self.total))
        return self.correct.float() / self.total.clamp(min=1)


class SortExactMatch(_SortCounts):
    """Fraction of sequences whose every predicted token is right (the seed's "final score").

    States are sums, reduced across processes, so a multi-device run reports the global figure.
    ``last_counts`` holds the (correct, total) of the latest ``compute()``, for the "a/b" log line.
    """

    def _counts(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        return (preds == target).all(dim=-1).sum(), target.size(0)


class SortTokenAccuracy(_SortCounts):
    """Fraction of output tokens predicted right, overall (a smoother signal than exact match)."""

    def _counts(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        return (preds == target).sum(), target.numel()


def format_score(correct: int, total: int) -> str:
    """The seed's line: ``final score: 5000/5000 = 100.00% correct``."""
    pct = 100.0 * correct / total if total else 0.0
    return f"final score: {correct}/{total} = {pct:.2f}% correct"
