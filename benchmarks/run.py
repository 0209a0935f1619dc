"""Side-by-side speed benchmarks; each sub-command rewrites its own section of ``benchmarks/RESULTS.md``.

    python -m benchmarks.run all          # everything, under 10 minutes on a 2-core CPU
    python -m benchmarks.run step         # Lightning vs plain loop vs seed-style loop, ms per training step
    python -m benchmarks.run solve        # training wall time until every held-out sequence is sorted
    python -m benchmarks.run decode       # greedy sorting of 5,000 held-out sequences: cache vs no cache
    python -m benchmarks.run efficiency   # achieved FLOP/s of a training step vs this machine's matmul peak

Contenders are measured in the same process and interleaved in rounds, so that their ratios hold on a
noisy, shared machine even when the absolute figures drift.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTIONS = ("step", "solve", "decode", "efficiency")

# the seed's reference run (configs/experiment/seed_reference.yaml = the defaults)
SEED_BATCH, SEED_LR, SEED_CLIP = 64, 5e-4, 1.0
QUIET = ["trainer.enable_progress_bar=false", "~callbacks.rich_progress_bar",
         "trainer.enable_model_summary=false", "trainer.accelerator=cpu"]


def note(msg: str) -> None:
    """Progress on stderr; the results go to RESULTS.md."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000.0


# ------------------------------------------------------------------------------------------ config
def compose(overrides: list[str], output_dir: Path, config_name: str = "train.yaml"):
    """Compose ``configs/<config_name>`` with ``overrides`` in-process, writing under ``output_dir``."""
    from sortgpt.utils import compose_config

    return compose_config(config_name, overrides, output_dir)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's banners and warnings while benchmarking (they would flood the terminal)."""
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "sortgpt", "sortgpt.model",
             "sortgpt.train")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------ training contenders
def _stepclock():
    import lightning.pytorch as L

    class StepClock(L.Callback):
        """Wall time between consecutive training-batch ends: data, forward, backward, step, hooks."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self._last: float | None = None

        def on_train_batch_end(self, *args: Any) -> None:
            now = time.perf_counter()
            if self._last is not None:
                self.times.append(now - self._last)
            self._last = now

        def on_validation_start(self, *args: Any) -> None:
            self._last = None  # a step that spans a validation is not a training step

    return StepClock()


def lightning_steps(overrides: list[str], steps: int, workdir: Path) -> list[float]:
    """Seconds per step of ``Trainer.fit`` on the config of ``overrides`` (callbacks, logger included)."""
    import hydra

    from sortgpt.pipeline import build_trainer
    from sortgpt.utils import instantiate_all

    cfg = compose([*overrides, *QUIET, f"trainer.max_steps={steps}",
                   f"trainer.val_check_interval={steps + 1}"], workdir)
    with quiet_lightning():
        torch.manual_seed(cfg.seed)
        datamodule = hydra.utils.instantiate(cfg.data)
        model = hydra.utils.instantiate(cfg.model)
        clock = _stepclock()
        trainer = build_trainer(cfg, callbacks=[*instantiate_all(cfg.get("callbacks")), clock])
        trainer.fit(model, datamodule=datamodule)
    return clock.times


def _adamw(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW as SortGPTModule builds it: weight decay 0.1 on matmul weights only, betas (0.9, 0.95)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            (decay if isinstance(module, torch.nn.Linear) and name == "weight" else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def _loop(model: torch.nn.Module, batches: Iterator, steps: int, lr: float,
          autocast: bool = False) -> list[float]:
    """The plain PyTorch training loop: next batch, forward, backward, clip, step; seconds per step."""
    opt = _adamw(model, lr)
    model.train()
    times: list[float] = []
    last = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), SEED_CLIP)
        opt.step()
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times


def _seed_gpt(attn_impl: str, dropout: float = 0.1, **shape: int):
    from sortgpt.model import GPT, GPTConfig

    kw = {"n_layer": 4, "n_head": 4, "d_model": 128, **shape}
    return GPT(GPTConfig(vocab_size=3, block_size=11, dropout=dropout, attn_impl=attn_impl, **kw))


def plain_steps(steps: int, attn_impl: str, batch_size: int = SEED_BATCH, autocast: bool = False,
                seed: int = 42, **shape: int) -> list[float]:
    """The same GPT on the same batch stream as Lightning (``SortDataModule``'s), in a plain loop."""
    from sortgpt.data import SortTask, _TrainBatches

    torch.manual_seed(seed)
    model = _seed_gpt(attn_impl, **shape)
    batches = iter(_TrainBatches(SortTask(), batch_size, seed, lambda: 0))
    return _loop(model, batches, steps, SEED_LR, autocast)


class SeedStyleDataset(Dataset):
    """The seed framework's way of feeding data: one random sequence per ``__getitem__``, collated."""

    def __init__(self, length: int = 6, num_digits: int = 3, size: int = 10**8, seed: int = 42) -> None:
        from sortgpt.data import SortTask

        self.task, self.size, self.seed = SortTask(length, num_digits), size, seed
        self.gen = torch.Generator()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.gen.manual_seed(self.seed * 1_000_003 + i)
        x, y = self.task.encode(self.task.sample(1, "train", self.gen))
        return x[0], y[0]  # (block_size,) each


class SeedGELU(torch.nn.Module):
    """The seed's GELU: the tanh formula differentiated by autograd (no hand-written backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def seed_style_steps(steps: int, batch_size: int = SEED_BATCH, seed: int = 42) -> list[float]:
    """The seed-style baseline: per-sample Dataset + DataLoader, the seed's model code path (manual
    attention, autograd GELU), dropout 0.1."""
    torch.manual_seed(seed)
    model = _seed_gpt("manual")
    for block in model.transformer.h:
        block.mlp.gelu = SeedGELU()
    loader = DataLoader(SeedStyleDataset(seed=seed), batch_size=batch_size, shuffle=False,
                        num_workers=0)
    return _loop(model, iter(loader), steps, SEED_LR)


@dataclass
class Section:
    """One section of RESULTS.md: its markdown and the figures the targets are judged on."""

    name: str
    markdown: str
    figures: dict[str, float] = field(default_factory=dict)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def bench_step(steps: int = 150, rounds: int = 2, warmup: int = 15, variants: bool = True) -> Section:
    """Median ms/step: Lightning (seed config) vs plain loop vs seed-style loop, interleaved in rounds."""
    seed_cfg = compose([], Path(tempfile.gettempdir()))
    impl = str(seed_cfg.model.attn_impl)
    precision = str(seed_cfg.trainer.precision)
    del seed_cfg
    contenders: dict[str, Callable[[Path], list[float]]] = {
        "lightning": lambda d: lightning_steps([], steps, d),
        "plain": lambda d: plain_steps(steps, impl),
        "seed_style": lambda d: seed_style_steps(steps),
    }
    if variants:
        other = "manual" if impl == "sdpa" else "sdpa"
        contenders.update({
            f"plain_{other}": lambda d: plain_steps(steps, other),
            "plain_1thread": lambda d: _with_threads(1, lambda: plain_steps(steps, impl)),
            "plain_bf16": lambda d: plain_steps(steps, impl, autocast=True),
            "lightning_bf16": lambda d: lightning_steps(["trainer.precision=bf16-mixed"], steps, d),
        })
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds):
        for name, fn in contenders.items():
            note(f"step: round {r + 1}/{rounds}, {name} ({steps} steps)")
            with tempfile.TemporaryDirectory() as d:
                times[name] += fn(Path(d))[warmup:]
    ms = {k: median_ms(v) for k, v in times.items()}
    desc = {
        "lightning": f"`Trainer.fit`, seed config (`python train.py`: attn_impl={impl}, precision "
                     f"{precision}, callbacks + TensorBoard logger, progress bar off)",
        "plain": f"plain PyTorch loop, same `GPT` ({impl}), same batch stream, same AdamW + clipping",
        "seed_style": "seed-style loop: per-sample `Dataset` + `DataLoader`, the seed's model code "
                      "(manual attention, GELU through autograd)",
        "plain_manual": "plain loop, attn_impl=manual",
        "plain_sdpa": "plain loop, attn_impl=sdpa",
        "plain_1thread": f"plain loop ({impl}), `torch.set_num_threads(1)`",
        "plain_bf16": f"plain loop ({impl}), bf16 autocast",
        "lightning_bf16": "`Trainer.fit`, seed config, `trainer.precision=bf16-mixed`",
    }
    rows = [[desc[k], f"{ms[k]:.1f}", f"{ms[k] / ms['plain']:.2f}", f"{ms[k] / ms['seed_style']:.2f}"]
            for k in contenders]
    md = (f"Seed configuration (4 layers, 4 heads, d_model 128, dropout 0.1, batch 64, lr 5e-4, clip 1.0); "
          f"median over {rounds} interleaved rounds of {steps} steps, the first {warmup} of each dropped.\n\n"
          + _table(["contender", "ms/step", "x plain", "x seed-style"], rows))
    figures = {f"step_ms_{k}": v for k, v in ms.items()}
    figures["lightning_over_plain"] = ms["lightning"] / ms["plain"]
    figures["lightning_over_seed_style"] = ms["lightning"] / ms["seed_style"]
    return Section("step", md, figures)


def _with_threads(n: int, fn: Callable[[], list[float]]) -> list[float]:
    with num_threads(n):
        return fn()


# --------------------------------------------------------------------------------------- time to solve
def _solveclock(max_seconds: float):
    import lightning.pytorch as L

    class SolveClock(L.Callback):
        """Training wall time, validation excluded, until ``val/exact_match`` (full eval) first hits 1.0.

        The clock is paused during validation, so checking costs nothing; training stops at the first
        solve or once ``max_seconds`` of training time are spent.
        """

        def __init__(self) -> None:
            self.elapsed = 0.0
            self._start: float | None = None
            self.solved_at: float | None = None
            self.solved_step: int | None = None
            self.history: list[tuple[int, float, float]] = []  # (step, seconds, exact match)

        def on_train_start(self, *args: Any) -> None:
            self._start = time.perf_counter()

        def on_train_batch_start(self, *args: Any) -> None:
            if self._start is None:  # the first batch after a validation (and its checkpoint saving)
                self._start = time.perf_counter()

        def on_validation_start(self, trainer: L.Trainer, *args: Any) -> None:
            if self._start is not None:
                self.elapsed += time.perf_counter() - self._start
                self._start = None

        def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
            if trainer.sanity_checking:
                return
            em = float(trainer.callback_metrics.get("val/exact_match", float("nan")))
            self.history.append((trainer.global_step, self.elapsed, em))
            if em >= 1.0 and self.solved_at is None:
                self.solved_at, self.solved_step = self.elapsed, trainer.global_step
                trainer.should_stop = True
            elif self.elapsed > max_seconds:
                trainer.should_stop = True

    return SolveClock()


def time_to_solve(overrides: list[str], workdir: Path, max_seconds: float) -> dict[str, Any]:
    """Train the config of ``overrides`` (validated on every held-out sequence) until it is solved.

    Returns the training seconds and step of the first solve (None if not solved) and the kept
    checkpoint's exact match on every held-out sequence, re-checked from the file.
    """
    import hydra

    from sortgpt.module import SortGPTModule
    from sortgpt.pipeline import build_trainer
    from sortgpt.utils import instantiate_all

    cfg = compose([*overrides, *QUIET, "data.full_eval=true"], workdir)
    with quiet_lightning():
        import lightning.pytorch as L

        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = hydra.utils.instantiate(cfg.data)
        model = hydra.utils.instantiate(cfg.model)
        clock = _solveclock(max_seconds)
        trainer = build_trainer(cfg, callbacks=[*instantiate_all(cfg.get("callbacks")), clock])
        trainer.fit(model, datamodule=datamodule)
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        kept = None
        if best:
            kept_model = SortGPTModule.load_from_checkpoint(best, map_location="cpu").eval()
            held_out = datamodule.task.enumerate("test")
            preds = kept_model.sort(held_out)
            correct = int((preds == datamodule.task.solve(held_out)).all(dim=1).sum())
            kept = (correct, held_out.size(0), Path(best).name)
    return {"seconds": clock.solved_at, "step": clock.solved_step, "trained": clock.elapsed,
            "steps_run": trainer.global_step, "kept": kept, "history": clock.history,
            "ms_per_step": 1000 * clock.elapsed / max(1, trainer.global_step)}


SOLVE_RUNS: dict[str, list[str]] = {
    "seed reference": ["experiment=seed_reference"],
    "fast_cpu": ["experiment=fast_cpu"],
}
SOLVE_SEEDS = [42, 1, 2]
CHECK_EVERY = 10  # steps between checks, the same for every run


def bench_solve(runs: dict[str, list[str]] | None = None, seeds: list[int] | None = None,
                max_seconds: float = 60.0, check_every: int = CHECK_EVERY) -> Section:
    """Training seconds until every held-out sequence is sorted: seed reference vs ``fast_cpu``."""
    runs = runs or SOLVE_RUNS
    seeds = seeds or SOLVE_SEEDS
    rows, figures = [], {}
    for name, overrides in runs.items():
        solved_seconds = []
        for seed in seeds:
            note(f"solve: {name}, seed {seed}")
            with tempfile.TemporaryDirectory() as d:
                res = time_to_solve([*overrides, f"seed={seed}", f"trainer.val_check_interval={check_every}"],
                                    Path(d), max_seconds)
            kept = res["kept"]
            kept_txt = f"{kept[0]}/{kept[1]} (`{kept[2]}`)" if kept else "none"
            when = (f"{res['seconds']:.1f} s (step {res['step']})" if res["seconds"] is not None
                    else f"not solved in {res['trained']:.0f} s ({res['steps_run']} steps)")
            rows.append([name, seed, when, f"{res['ms_per_step']:.1f}", kept_txt])
            solved_seconds.append(res["seconds"] if res["seconds"] is not None else float("inf"))
            if kept:
                figures[f"kept_ok_{name}_{seed}"] = float(kept[0] == kept[1])
        figures[f"solve_median_s_{name}"] = statistics.median(solved_seconds)
    cmds = "; ".join(f"{k}: `python train.py {' '.join(v)} data.full_eval=true "
                     f"trainer.val_check_interval={check_every}`" for k, v in runs.items())
    md = ("Training wall time (validation and checkpointing excluded: the clock pauses while every "
          "held-out sequence is decoded) until every held-out sequence is sorted exactly for the first "
          f"time, checked every {check_every} steps in every run; runs that have not solved it after "
          f"{max_seconds:.0f} s of training stop there. "
          "The kept checkpoint (best `val/exact_match`, earliest on ties) is reloaded from its file and "
          f"re-scored on every held-out sequence. Runs: {cmds}.\n\n"
          + _table(["run", "seed", "first solved after", "ms/step (mean)", "kept checkpoint, held-out"],
                   rows))
    return Section("solve", md, figures)


# ----------------------------------------------------------------------------------------------- decode
def _seed_way(model: torch.nn.Module, idx: torch.Tensor, new: int) -> torch.Tensor:
    """The seed's inference: recompute the whole prefix and ``lm_head`` at every position, each token."""
    for _ in range(new):
        logits, _ = model(idx)  # (B, T, V)
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


def _decode_rate(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch: int,
                 repeats: int) -> tuple[float, torch.Tensor]:
    """Sequences per second of ``fn`` over ``inputs`` in batches of ``batch`` (best of ``repeats``)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = torch.cat([fn(inputs[i:i + batch]) for i in range(0, inputs.size(0), batch)])
        best = min(best, time.perf_counter() - t0)
    return inputs.size(0) / best, out


def bench_decode(n: int = 5000, repeats: int = 3, eval_batch: int = 1000, **shape: int) -> Section:
    """Greedy sorting of ``n`` held-out draws: KV cache at one large batch vs uncached batch 100."""
    from sortgpt.data import SortDataModule

    inputs = SortDataModule(score_size=n).eval_inputs("test")  # (n, 6), the final score's draws
    torch.manual_seed(0)
    rows, figures = [], {}
    for impl in ("manual", "sdpa"):
        model = _seed_gpt(impl, dropout=0.0, **shape).eval()
        ways = {
            "seed's way: no cache, lm_head at every position, batch 100":
                (lambda x, m=model: _seed_way(m, x, 6), 100),
            "`generate(use_cache=False)`, batch 100":
                (lambda x, m=model: m.generate(x, 6, use_cache=False), 100),
            "`generate()` (KV cache), batch 100": (lambda x, m=model: m.generate(x, 6), 100),
            f"`generate()` (KV cache), one batch of {min(n, eval_batch)} (`data.eval_batch_size`)":
                (lambda x, m=model: m.generate(x, 6), min(n, eval_batch)),
            f"`generate()` (KV cache), one batch of {n}": (lambda x, m=model: m.generate(x, 6), n),
        }
        rates, outs = {}, []
        with torch.inference_mode():
            for label, (fn, batch) in ways.items():
                note(f"decode: {impl}, {label}")
                rates[label], out = _decode_rate(fn, inputs, batch, repeats)
                outs.append(out)
        same = all(torch.equal(o, outs[0]) for o in outs)
        base = rates[next(iter(ways))]
        for label, rate in rates.items():
            rows.append([impl, label, f"{rate:,.0f}", f"{rate / base:.1f}x", "yes" if same else "NO"])
        large = max(rates[k] for k in list(ways)[-2:])  # the better of the two large batches
        figures[f"decode_speedup_{impl}"] = large / base
        figures[f"decode_rate_cached_{impl}"] = large
    md = (f"Greedy sorting of the {n:,} held-out draws of the final score (seed model shape, 4 layers, "
          f"d_model 128; speed does not depend on the weights), `torch.inference_mode`, best of {repeats}."
          "\n\n" + _table(["attn_impl", "way", "sequences/s", "x seed's way", "same tokens"], rows))
    return Section("decode", md, figures)


# ------------------------------------------------------------------------------------------- efficiency
def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul FLOP/s: a large ``torch.mm``, best of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def linear_rate(rows: int = SEED_BATCH * 11, d_in: int = 128, d_out: int = 512, repeats: int = 50) -> float:
    """FLOP/s of one ``F.linear`` at the training step's own shape (its MLP: 704 x 128 -> 512)."""
    x, w = torch.randn(rows, d_in), torch.randn(d_out, d_in)
    torch.nn.functional.linear(x, w)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - t0)
    return 2 * rows * d_in * d_out / best


def step_flops(n_params: int, n_layer: int, d_model: int, batch: int, block: int) -> float:
    """FLOPs of one training step: 6 * params * tokens + attention's 12 * n_layer * d_model * T per token."""
    tokens = batch * block
    return 6 * n_params * tokens + 12 * n_layer * d_model * block * tokens


def bench_efficiency(steps: int = 120, rounds: int = 2, warmup: int = 15, mm_size: int = 2048) -> Section:
    """Achieved FLOP/s of a seed-config training step (Lightning and plain) against the matmul peak."""
    model = _seed_gpt("manual")
    n_params = sum(p.numel() for p in model.parameters())
    flops = step_flops(n_params, 4, 128, SEED_BATCH, 11)
    seed_cfg = compose([], Path(tempfile.gettempdir()))
    impl = str(seed_cfg.model.attn_impl)
    peaks, peaks1, shaped, lit, plain = [], [], [], [], []
    for r in range(rounds):
        note(f"efficiency: round {r + 1}/{rounds}")
        peaks.append(matmul_peak(mm_size))
        shaped.append(linear_rate())
        with num_threads(1):
            peaks1.append(matmul_peak(mm_size))
        with tempfile.TemporaryDirectory() as d:
            lit += lightning_steps([], steps, Path(d))[warmup:]
        plain += plain_steps(steps, impl)[warmup:]
    peak, peak1, shape_rate = max(peaks), max(peaks1), max(shaped)
    rows = []
    for label, times in ((f"Lightning `Trainer.fit`, seed config ({impl})", lit),
                         (f"plain loop, same model ({impl})", plain)):
        ms = median_ms(times)
        achieved = flops / (ms / 1000)
        rows.append([label, f"{ms:.1f}", f"{achieved / 1e9:.1f}", f"{100 * achieved / peak:.0f}%"])
    lit_frac = flops / (median_ms(lit) / 1000) / peak
    md = (f"One step = {flops / 1e9:.2f} GFLOP (6 x {n_params:,} params x {SEED_BATCH * 11} tokens + "
          f"attention 12 x 4 layers x 128 x 11 per token). fp32 matmul peak (`torch.mm` {mm_size}^2, best of "
          f"5, measured in each round): {peak / 1e9:.1f} GFLOP/s with {torch.get_num_threads()} threads, "
          f"{peak1 / 1e9:.1f} GFLOP/s with 1 thread. A matmul at the step's own MLP shape "
          f"(704 x 128 -> 512, the largest it has) alone reaches {shape_rate / 1e9:.1f} GFLOP/s "
          f"({100 * shape_rate / peak:.0f}% of that peak).\n\n"
          + _table(["step", "ms/step", "GFLOP/s", "of fp32 matmul peak"], rows))
    return Section("efficiency", md, {"peak_gflops": peak / 1e9, "peak1_gflops": peak1 / 1e9,
                                      "shape_gflops": shape_rate / 1e9,
                                      "lightning_peak_fraction": lit_frac})


# ---------------------------------------------------------------------------------------------- results
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def header(command: str) -> str:
    import lightning

    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
           else "none in this session: CPU rows only")
    return "\n".join([
        "# Benchmarks", "",
        "Written by `python -m benchmarks.run` (do not edit by hand; rerun it). Each section's "
        "contenders ran side by side in one process, so their ratios hold even where the absolute "
        "figures drift on a shared machine.", "",
        _table(["", ""], [
            ["command", f"`{command}`"],
            ["date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime())],
            ["torch", torch.__version__], ["lightning", lightning.__version__],
            ["intra-op threads", torch.get_num_threads()], ["CPU", f"{cpu_model()} ({os.cpu_count()} cores,"
                                                              f" {torch.backends.cpu.get_cpu_capability()})"],
            ["GPU", gpu],
        ]),
    ])


def _marker(name: str, end: bool = False) -> str:
    return f"<!-- {'/' if end else ''}section:{name} -->"


def write_results(sections: list[Section], command: str, path: Path = RESULTS,
                  targets: str | None = None) -> None:
    """Rewrite ``path``: a fresh header, the new sections, and any other section kept from before."""
    old = path.read_text() if path.exists() else ""
    titles = {"step": "Training step", "solve": "Time to solve", "decode": "Decoding",
              "efficiency": "Efficiency", "targets": "Targets"}
    bodies: dict[str, str] = {}
    for name in (*SECTIONS, "targets"):
        m = re.search(re.escape(_marker(name)) + r"\n(.*?)\n" + re.escape(_marker(name, True)), old, re.S)
        if m:
            bodies[name] = m.group(1)
    for s in sections:
        bodies[s.name] = f"## {titles[s.name]}\n\n{s.markdown}\n\nCommand: `{command}`"
    if targets is not None:
        bodies["targets"] = f"## {titles['targets']}\n\n{targets}"
    parts = [header(command)]
    parts += [f"{_marker(n)}\n{bodies[n]}\n{_marker(n, True)}" for n in ("targets", *SECTIONS) if n in bodies]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n")


def judge(figures: dict[str, float]) -> str:
    """The issue's targets against the figures of this run."""
    rows = []

    def add(target: str, value: str, ok: bool | None) -> None:
        rows.append([target, value, "n/a" if ok is None else ("yes" if ok else "**no**")])

    f = figures.get
    if f("lightning_over_plain") is not None:
        add("Lightning step <= 1.1x plain loop", f"{f('lightning_over_plain'):.2f}x",
            f("lightning_over_plain") <= 1.1)
        add("Lightning step <= 0.8x seed-style loop", f"{f('lightning_over_seed_style'):.2f}x",
            f("lightning_over_seed_style") <= 0.8)
    if f("lightning_peak_fraction") is not None:
        add(">= 50% of fp32 matmul peak", f"{100 * f('lightning_peak_fraction'):.0f}%",
            f("lightning_peak_fraction") >= 0.5)
    for impl in ("manual", "sdpa"):
        if f(f"decode_speedup_{impl}") is not None:
            add(f"greedy decoding, KV cache at one large batch, >= 6x the uncached batch-100 way ({impl})",
                f"{f(f'decode_speedup_{impl}'):.1f}x", f(f"decode_speedup_{impl}") >= 6)
    ref, fast = f("solve_median_s_seed reference"), f("solve_median_s_fast_cpu")
    if ref is not None and fast is not None:
        ratio = fast / ref if ref != float("inf") else 0.0
        add("fast_cpu time to solve <= 1/4 of the seed reference's (median over seeds)",
            f"{fast:.1f} s vs {ref:.1f} s = {ratio:.2f}", ratio <= 0.25)
        kept = [v for k, v in figures.items() if k.startswith("kept_ok_fast_cpu")]
        add("fast_cpu kept checkpoint sorts every held-out sequence", f"{int(sum(kept))}/{len(kept)} runs",
            bool(kept) and all(kept))
    return _table(["target", "measured", "holds"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=[*SECTIONS, "all"])
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to (re)write")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    t0 = time.perf_counter()
    funcs = {"step": bench_step, "solve": bench_solve, "decode": bench_decode,
             "efficiency": bench_efficiency}
    sections, figures = [], {}
    for name in (SECTIONS if args.what == "all" else [args.what]):
        section = funcs[name]()
        sections.append(section)
        figures.update(section.figures)
    targets = judge(figures) if args.what == "all" else None
    write_results(sections, command, args.out, targets)
    note(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    if targets:
        print(targets)


if __name__ == "__main__":
    main()
