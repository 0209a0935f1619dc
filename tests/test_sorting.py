"""Sort on demand: parsing a user's sequence, and ``eval.py ckpt_path=... sort=...`` as a new user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sortgpt.data import SortTask
from sortgpt.sorting import SequenceError, parse_sequence, sort_sequence
from sortgpt.validation import SortGPTError
from tests.conftest import ROOT

TASK = SortTask(6, 3, 0.25)


@pytest.mark.parametrize("value", ["2 0 1 1 0 2", "2, 0, 1, 1, 0, 2", "201102", [2, 0, 1, 1, 0, 2],
                                   " 2 0 1 1 0 2 ", "[2,0,1,1,0,2]", 201102])
def test_parse_accepts_the_usual_spellings(value):
    assert parse_sequence(value, TASK).tolist() == [[2, 0, 1, 1, 0, 2]]


@pytest.mark.parametrize("value, message", [
    ("2 0 1", r"got 3 digits \(2 0 1\); this checkpoint sorts sequences of exactly 6"),
    ("2 0 1 1 0 2 1", "got 7 digits"),
    ("2 0 3 1 0 2", "3 is outside this checkpoint's vocabulary: its digits are 0 to 2"),
    ("2 0 -1 1 0 2", "-1 is outside"),
    ("2 0 x 1 0 2", "'x' is not an integer"),
    ("2 0 1.5 1 0 2", "'1.5' is not an integer"),
    ("", "the sequence to sort is empty"),
    ([], "the sequence to sort is empty"),
    (None, "the sequence to sort is empty"),
])
def test_parse_refuses_a_bad_sequence_naming_the_value(value, message):
    with pytest.raises(SequenceError, match=message):
        parse_sequence(value, TASK)


def test_sort_sequence_matches_the_model(tiny_run):
    model = tiny_run["model"]
    inputs, output, task = sort_sequence(tiny_run["best_model_path"], "2 1 0 1")
    assert inputs == [2, 1, 0, 1] and task.length == 4
    assert output == model.sort(torch.tensor([inputs]))[0].cpu().tolist()
    with pytest.raises(SortGPTError, match="does not exist"):
        sort_sequence(tiny_run["out"] / "missing.ckpt", "2 1 0 1")


def _eval(ckpt, sort, tmp_path):
    cmd = [sys.executable, "eval.py", f"ckpt_path={ckpt}", f"sort={sort}", f"paths.log_dir={tmp_path}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_sort_command_sorts_and_refuses_clearly(tiny_run, tmp_path):
    ckpt = tiny_run["best_model_path"]
    out = _eval(ckpt, "2 0 2 1", tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    model = tiny_run["model"]
    expected = " ".join(map(str, model.sort(torch.tensor([[2, 0, 2, 1]]))[0].tolist()))
    assert "input  : 2 0 2 1" in out.stdout and f"sorted : {expected}" in out.stdout
    bad = _eval(ckpt, "2 0 7 1", tmp_path)
    assert bad.returncode == 1
    assert "error: 7 is outside this checkpoint's vocabulary" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
