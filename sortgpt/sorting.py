"""Sort on demand: ``python eval.py ckpt_path=PATH sort="2 0 1 1 0 2"`` prints the model's sorted output.

The sequence is checked against the checkpoint's task before the model sees it: a wrong length, a digit
outside the vocabulary, a value that is not an integer or an empty input each stop the command with one
line that names the bad value (``SequenceError``; ``eval.py`` prints it and exits with status 1).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from sortgpt.checkpoint import load_checkpoint, resolve_ckpt_path
from sortgpt.data import SortTask
from sortgpt.validation import SortGPTError


class SequenceError(SortGPTError, ValueError):
    """A user-given sequence the checkpoint's task cannot take."""


def parse_sequence(value: Any, task: SortTask) -> torch.Tensor:
    """``value`` (a string of digits separated by spaces or commas, a list, or one number) as (1, length).

    A single run of digits without separators (``"201120"``) is read one digit per character when its
    length is the task's and the vocabulary has at most 10 digits.
    """
    hint = f"give {task.length} digits from 0 to {task.num_digits - 1}, e.g. sort=\"{_example(task)}\""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        tokens = [str(v).strip() for v in value]
    elif value is None:
        tokens = []
    else:
        tokens = [t for t in re.split(r"[\s,]+", str(value).strip().strip("[]()")) if t]
    if not tokens:
        raise SequenceError(f"the sequence to sort is empty: {hint}")
    if (len(tokens) == 1 and len(tokens[0]) == task.length and task.length > 1 and tokens[0].isdigit()
            and task.num_digits <= 10):
        tokens = list(tokens[0])
    digits = []
    for tok in tokens:
        if not re.fullmatch(r"[+-]?\d+", tok):
            raise SequenceError(f"{tok!r} is not an integer: {hint}")
        d = int(tok)
        if not 0 <= d < task.num_digits:
            raise SequenceError(
                f"{d} is outside this checkpoint's vocabulary: its digits are 0 to {task.num_digits - 1} "
                f"(num_digits={task.num_digits})")
        digits.append(d)
    if len(digits) != task.length:
        raise SequenceError(
            f"got {len(digits)} digits ({' '.join(map(str, digits))}); this checkpoint sorts sequences of "
            f"exactly {task.length} (length={task.length}): {hint}")
    return torch.tensor([digits], dtype=torch.long)


def _example(task: SortTask) -> str:
    return " ".join(str((task.length - 1 - i) % task.num_digits) for i in range(task.length))


def sort_sequence(ckpt_path: str | Path, value: Any) -> tuple[list[int], list[int], SortTask]:
    """Load the checkpoint and sort ``value``: returns (input, model's output, the task)."""
    from sortgpt.module import SortGPTModule

    load_checkpoint(ckpt_path)  # a clear error for a missing, empty or corrupted file; no code is run
    model = SortGPTModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    inputs = parse_sequence(value, model.task)
    model.eval()
    return inputs[0].tolist(), model.sort(inputs)[0].cpu().tolist(), model.task


def sort_command(cfg: Any) -> list[int]:
    """What ``eval.py ... sort=...`` does: print the input, the model's output and whether it is right."""
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), f"{cfg.paths.log_dir}/train/runs")
    inputs, output, task = sort_sequence(ckpt_path, cfg.get("sort"))
    expected = sorted(inputs)
    split = "held out (never trained on)" if bool(task.is_test(torch.tensor([inputs]))[0]) else "train"
    print(f"input  : {' '.join(map(str, inputs))}")
    print(f"sorted : {' '.join(map(str, output))}")
    print(f"correct: {'yes' if output == expected else 'no, expected ' + ' '.join(map(str, expected))} "
          f"(input from the {split} split)")
    return output
