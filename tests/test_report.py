"""The sweep report reads a real two-job multirun folder and prints one row per job, best first."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from sortgpt.report import COLUMNS, main, read_sweep
from tests.conftest import ROOT


def test_report_has_one_row_per_job_sorted_by_the_optimised_metric(two_job_multirun, capsys):
    sweep, _ = two_job_multirun
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "Sorted by val/exact_match" in printed
    rows, metric = read_sweep(sweep)
    assert metric == "val/exact_match"
    assert sorted(r.job for r in rows) == ["0", "1"]
    assert {r.overrides.split("model.n_layer=")[1].split()[0] for r in rows} == {"1", "2"}
    best = [r.best_val_exact_match for r in rows]
    assert best == sorted(best, reverse=True)
    ties = [(r.best_val_exact_match, r.steps_to_100 or 10**9) for r in rows]
    assert ties == sorted(ties, key=lambda t: (-t[0], t[1]))
    assert "Overrides of every job: " in printed and "trainer.max_steps=60" in printed
    for r in rows:
        assert f"| {r.job} | model.n_layer=" in printed
        assert 0.0 <= r.val_exact_match <= r.best_val_exact_match <= 1.0
        assert 0.0 <= r.test_exact_match <= 1.0
        assert r.wall_s is not None and r.wall_s >= 0
        if r.steps_to_100 is not None:
            assert r.steps_to_100 % 20 == 0 and r.steps_to_100 <= 60
    by_layers = {int(r.overrides.split("model.n_layer=")[1].split()[0]): r.params for r in rows}
    assert by_layers[2] > by_layers[1] > 0  # counted from each job's own config
    with open(sweep / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS) and [t["job"] for t in table] == [r.job for r in rows]
    assert (sweep / "report.md").read_text().count("\n| ") == 3  # header + 2 jobs


def test_report_refuses_a_folder_that_is_not_a_multirun(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sortgpt.report", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert str(tmp_path) in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(FileNotFoundError, match="not a folder"):
        read_sweep(tmp_path / "missing")
