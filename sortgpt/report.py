"""Sweep report: one row per job of a multirun folder, best first.

``python -m sortgpt.report outputs/train/multiruns/<date>`` prints the table and writes ``report.csv`` and
``report.md`` into that folder. Per job: its overrides (``.hydra/overrides.yaml``), parameter count (the
GPT built from ``.hydra/config.yaml``, counted as the log line counts), final and best
``val/exact_match``, ``test/exact_match``, the first step at which every held-out validation sequence was
sorted, and wall time (first to last line of the job's log file, else the span of its TensorBoard
events). Rows are sorted by the sweep's ``optimized_metric`` (best value for ``val/*``, higher first;
``*loss`` lower first); jobs that did not finish show ``-``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import yaml

COLUMNS = ("job", "overrides", "params", "val_exact_match", "best_val_exact_match", "test_exact_match",
           "steps_to_100", "wall_s")


@dataclass
class JobRow:
    """One job of the sweep; ``None`` where the job did not produce the figure."""

    job: str
    overrides: str
    params: int | None
    val_exact_match: float | None
    best_val_exact_match: float | None
    test_exact_match: float | None
    steps_to_100: int | None
    wall_s: float | None


def _scalars(tb_dir: Path) -> tuple[dict[str, list[tuple[int, float, float]]], float | None]:
    """Every scalar tag of the job's TensorBoard events: tag -> [(step, value, wall_time)], and span."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float, float]]] = {}
    times: list[float] = []
    for events_dir in sorted({p.parent for p in tb_dir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            evs = [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
            out.setdefault(tag, []).extend(evs)
            times.extend(e[2] for e in evs)
    span = max(times) - min(times) if len(times) > 1 else None
    return out, span


def _log_wall_time(job: Path) -> float | None:
    """Seconds from the first to the last timestamped line of the job's ``*.log`` (seed format)."""
    for log_file in sorted(job.glob("*.log")):
        stamps = []
        for line in log_file.read_text(errors="replace").splitlines():
            try:
                stamps.append(datetime.strptime(line[:19], "%m/%d/%Y %H:%M:%S"))
            except ValueError:
                continue
        if len(stamps) > 1:
            return (stamps[-1] - stamps[0]).total_seconds()
    return None


def _num_parameters(cfg: dict) -> int | None:
    try:
        from sortgpt.data import SortTask
        from sortgpt.model import GPT, GPTConfig

        m, d = cfg["model"], cfg["data"]
        task = SortTask(int(d["length"]), int(d["num_digits"]), float(d["test_fraction"]))
        gpt = GPT(GPTConfig(vocab_size=task.vocab_size, block_size=task.block_size, n_layer=m["n_layer"],
                            n_head=m["n_head"], d_model=m["d_model"], bias=m.get("bias", True)))
        return gpt.num_parameters()
    except (KeyError, TypeError, ValueError):
        return None


def read_job(job: Path) -> JobRow:
    """The row of one job folder (``<multirun>/<n>``)."""
    hydra_dir = job / ".hydra"
    overrides = []
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) or []
    cfg = {}
    if (hydra_dir / "config.yaml").is_file():
        cfg = yaml.safe_load((hydra_dir / "config.yaml").read_text()) or {}
    scalars, span = _scalars(job)
    val = sorted(scalars.get("val/exact_match", []))
    test = sorted(scalars.get("test/exact_match", []))
    # Lightning logs a validation at the index of the last training batch: steps taken = step + 1
    first_100 = next((step + 1 for step, value, _ in val if value >= 1.0), None)
    wall = _log_wall_time(job)
    return JobRow(
        job=job.name,
        overrides=" ".join(str(o) for o in overrides),
        params=_num_parameters(cfg),
        val_exact_match=val[-1][1] if val else None,
        best_val_exact_match=max(v for _, v, _ in val) if val else None,
        test_exact_match=test[-1][1] if test else None,
        steps_to_100=first_100,
        wall_s=wall if wall is not None else span,
    )


def _sort_key(metric: str, row: JobRow, sign: float) -> tuple:
    """Best first by the metric; on ties, fewer steps to 100% held-out, then less wall time."""
    value = {"val/exact_match": row.best_val_exact_match, "test/exact_match": row.test_exact_match,
             }.get(metric, row.best_val_exact_match)
    steps = row.steps_to_100 if row.steps_to_100 is not None else float("inf")
    wall = row.wall_s if row.wall_s is not None else float("inf")
    return (value is None, sign * (value or 0.0), steps, wall)


def read_sweep(folder: str | Path) -> tuple[list[JobRow], str]:
    """Rows of every job folder of ``folder``, sorted by the sweep's optimised metric (best first)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: give a multirun folder such as "
                                f"outputs/train/multiruns/<date>")
    jobs = sorted((p for p in folder.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
                  key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    if not jobs:
        raise FileNotFoundError(f"{folder} holds no job folders (<n>/.hydra): is it a multirun folder?")
    metric = "val/exact_match"
    cfg_file = jobs[0] / ".hydra" / "config.yaml"
    if cfg_file.is_file():
        metric = (yaml.safe_load(cfg_file.read_text()) or {}).get("optimized_metric") or metric
    sign = 1.0 if "loss" in metric else -1.0  # losses: lower first; scores: higher first
    rows = [read_job(job) for job in jobs]
    rows.sort(key=lambda r: _sort_key(metric, r, sign))
    return rows, metric


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value <= 1.0 else f"{value:.1f}"
    return str(value)


def to_markdown(rows: list[JobRow], metric: str) -> str:
    """A markdown table of ``rows`` under a line naming the metric they are sorted by.

    Overrides shared by every job are listed once above the table; the column keeps those that differ.
    """
    per_job = [r.overrides.split() for r in rows]
    common = [o for o in per_job[0] if all(o in job for job in per_job)] if len(rows) > 1 else []
    lines = [f"Sorted by {metric} (best first)."]
    if common:
        lines.append(f"Overrides of every job: {' '.join(common)}")
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r, job in zip(rows, per_job, strict=True):
        values = asdict(r)
        values["overrides"] = " ".join(o for o in job if o not in common)
        lines.append("| " + " | ".join(_fmt(v) for v in values.values()) + " |")
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path) -> tuple[list[JobRow], str]:
    """Read the sweep, write ``report.csv`` and ``report.md`` into it, and return (rows, markdown)."""
    rows, metric = read_sweep(folder)
    folder = Path(folder)
    with open(folder / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: "" if v is None else v for k, v in asdict(r).items()})
    md = to_markdown(rows, metric)
    (folder / "report.md").write_text(md)
    return rows, md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sortgpt.report", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a multirun folder, e.g. outputs/train/multiruns/<date>")
    args = parser.parse_args(argv)
    try:
        rows, md = write_report(args.folder)
    except (FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(md, end="")
    print(f"({len(rows)} jobs; written to {Path(args.folder) / 'report.csv'} and report.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
