"""Error analysis of a trained sorter: where its mistakes are, for ``eval.py``.

Three views, each a table of exact match and token accuracy:

- by output position ``i`` (token accuracy of position ``i``; exact match of positions ``0..i``, so the
  last row is the overall exact match);
- by the number of distinct digits in the input;
- by family of held-out input: ``random``, ``already sorted``, ``reverse sorted``, ``all equal``,
  ``many repeats`` (one digit fills more than half the positions, not all of them). Families overlap
  (an all-equal input is also sorted); a family with no held-out member shows ``n = 0``.

All inputs are from the held-out split. When the task is small enough to list, every held-out sequence
is scored once; otherwise ``max_per_family`` draws per family. A few mistakes are listed as
input / predicted / expected, and the same figures are drawn as a PNG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from sortgpt.data import SortTask

log = logging.getLogger("sortgpt.analysis")

FAMILIES = ("random", "already sorted", "reverse sorted", "all equal", "many repeats")


@dataclass
class Row:
    """One line of a table: ``n`` sequences, their exact match and token accuracy (None when n = 0)."""

    group: str
    name: str
    n: int
    exact_match: float | None
    token_acc: float | None


@dataclass
class ErrorAnalysis:
    """The tables (rows of every group) and a few mistakes ``(input, predicted, expected)``."""

    rows: list[Row] = field(default_factory=list)
    mistakes: list[tuple[list[int], list[int], list[int]]] = field(default_factory=list)

    def group(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.group == name]

    def table(self) -> str:
        """The rows as an aligned text table, one block per group."""
        lines = [f"{'group':<16} {'name':<16} {'n':>7} {'exact match':>12} {'token acc':>10}"]
        for r in self.rows:
            em = "-" if r.exact_match is None else f"{100 * r.exact_match:.2f}%"
            ta = "-" if r.token_acc is None else f"{100 * r.token_acc:.2f}%"
            lines.append(f"{r.group:<16} {r.name:<16} {r.n:>7} {em:>12} {ta:>10}")
        return "\n".join(lines)

    def figure(self) -> Any:
        """A matplotlib figure: one bar chart per group, exact match and token accuracy side by side."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        groups = list(dict.fromkeys(r.group for r in self.rows))
        fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
        for ax, group in zip(axes[0], groups, strict=True):
            rows = self.group(group)
            xs = torch.arange(len(rows)).numpy()
            em = [100 * (r.exact_match or 0.0) for r in rows]
            ta = [100 * (r.token_acc or 0.0) for r in rows]
            ax.bar(xs - 0.2, em, width=0.4, label="exact match")
            ax.bar(xs + 0.2, ta, width=0.4, label="token accuracy")
            ax.set_xticks(xs, [f"{r.name}\n(n={r.n})" for r in rows], fontsize=7)
            ax.set_ylim(0, 105)
            ax.set_ylabel("% correct")
            ax.set_title(f"by {group}", fontsize=9)
        axes[0][0].legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        return fig


def held_out_families(task: SortTask, max_per_family: int = 2000, seed: int = 0) -> dict[str, torch.Tensor]:
    """Held-out inputs (N, length) of each family in ``FAMILIES``.

    Enumerable tasks: every held-out sequence of the family (``random`` = all held-out sequences).
    Others: uniform draws, and draws turned into each family, kept when they fall in the held-out split.
    """
    gen = torch.Generator().manual_seed(seed)
    L_, D = task.length, task.num_digits
    if task.enumerable:
        pool = task.enumerate("test")
        families = {"random": pool}
    else:
        n = 4 * max_per_family
        rand = torch.randint(D, (n, L_), generator=gen)
        const = torch.arange(D).repeat_interleave(L_).view(D, L_)
        fill = torch.randint(D, (n, 1), generator=gen).expand(n, L_)
        repeats = torch.where(torch.rand(n, L_, generator=gen) < 0.8, fill, rand)
        pool = torch.cat([rand, rand.sort(dim=1).values, rand.sort(dim=1, descending=True).values,
                          const, repeats])
        pool = pool[task.is_test(pool)]
        families = {"random": rand[task.is_test(rand)]}
    counts = F.one_hot(pool, D).sum(dim=1)  # (N, D): occurrences of each digit
    distinct = (counts > 0).sum(dim=1)
    families["already sorted"] = pool[(pool[:, 1:] >= pool[:, :-1]).all(dim=1)]
    families["reverse sorted"] = pool[(pool[:, 1:] <= pool[:, :-1]).all(dim=1)]
    families["all equal"] = pool[distinct == 1]
    families["many repeats"] = pool[(counts.max(dim=1).values > L_ // 2) & (distinct > 1)]
    out = {}
    for name in FAMILIES:
        x = torch.unique(families[name], dim=0) if name != "random" or task.enumerable else families[name]
        out[name] = x[:max_per_family]
    return out


@torch.no_grad()
def _predict(model: Any, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    preds = [model.sort(inputs[i:i + batch_size]).cpu() for i in range(0, inputs.size(0), batch_size)]
    return torch.cat(preds) if preds else inputs.new_empty(0, inputs.size(1))


def _row(group: str, name: str, preds: torch.Tensor, target: torch.Tensor) -> Row:
    if target.size(0) == 0:
        return Row(group, name, 0, None, None)
    right = preds == target
    return Row(group, name, target.size(0), right.all(dim=1).float().mean().item(),
               right.float().mean().item())


def analyse(model: Any, task: SortTask, max_per_family: int = 2000, batch_size: int = 1000,
            num_mistakes: int = 5) -> ErrorAnalysis:
    """Score ``model`` (anything with ``sort(inputs) -> preds``) on held-out inputs, sliced three ways."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    families = held_out_families(task, max_per_family)
    result = ErrorAnalysis()
    preds_of = {name: _predict(model, x, batch_size) for name, x in families.items()}

    inputs, preds = families["random"], preds_of["random"]
    target = task.solve(inputs)
    right = preds == target  # (N, L)
    for i in range(task.length):
        n = target.size(0)
        result.rows.append(Row("position", f"{i}", n, right[:, :i + 1].all(dim=1).float().mean().item()
                               if n else None, right[:, i].float().mean().item() if n else None))
    distinct = (F.one_hot(inputs, task.num_digits).sum(dim=1) > 0).sum(dim=1)
    for k in range(1, min(task.length, task.num_digits) + 1):
        sel = distinct == k
        result.rows.append(_row("distinct digits", str(k), preds[sel], target[sel]))
    for name in FAMILIES:
        result.rows.append(_row("family", name, preds_of[name], task.solve(families[name])))

    seen = set()
    for name in FAMILIES:
        x, p = families[name], preds_of[name]
        wrong = (p != task.solve(x)).any(dim=1).nonzero().flatten().tolist()
        for j in wrong:
            key = tuple(x[j].tolist())
            if key in seen:
                continue
            seen.add(key)
            result.mistakes.append((x[j].tolist(), p[j].tolist(), task.solve(x[j:j + 1])[0].tolist()))
            if len(result.mistakes) >= num_mistakes:
                break
        if len(result.mistakes) >= num_mistakes:
            break
    if was_training:
        model.train()
    return result


def report(model: Any, task: SortTask, out_dir: str | Path | None = None, loggers: list | None = None,
           batch_size: int = 1000, max_per_family: int = 2000) -> ErrorAnalysis:
    """Run ``analyse``, log the tables and a few mistakes, write ``error_analysis.png`` into ``out_dir``
    and add the figure to every TensorBoard logger (tag ``eval/error_analysis``)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    result = analyse(model, task, max_per_family=max_per_family, batch_size=batch_size)
    log.info("Error analysis on held-out inputs:\n%s", result.table())
    if result.mistakes:
        log.info("Some mistakes (input / predicted / expected):")
        for x, p, t in result.mistakes:
            log.info("  %s / %s / %s", x, p, t)
    else:
        log.info("No mistakes on the held-out inputs analysed.")
    fig = result.figure()
    if out_dir is not None:
        path = Path(out_dir) / "error_analysis.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        log.info("error analysis plot: %s", path)
    for lg in loggers or []:
        if isinstance(lg, TensorBoardLogger):
            lg.experiment.add_figure("eval/error_analysis", fig, close=False)
            lg.experiment.flush()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return result
