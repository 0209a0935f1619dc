"""Error analysis: per position, by distinct digits, by family of held-out inputs; PNG and TensorBoard."""

from __future__ import annotations

import torch

from sortgpt.analysis import FAMILIES, analyse, held_out_families
from sortgpt.data import SortTask
from sortgpt.module import SortGPTModule
from sortgpt.pipeline import evaluate
from tests.conftest import compose_cfg


def _check_families(task: SortTask, families: dict[str, torch.Tensor]) -> None:
    assert list(families) == list(FAMILIES)
    for name, x in families.items():
        if x.numel():
            assert task.is_test(x).all(), name  # held out only
    counts = [torch.bincount(row, minlength=task.num_digits) for row in families["many repeats"]]
    assert all(c.max() > task.length // 2 and (c > 0).sum() > 1 for c in counts)
    s = families["already sorted"]
    assert torch.equal(s, s.sort(dim=1).values)
    r = families["reverse sorted"]
    assert torch.equal(r, r.sort(dim=1, descending=True).values)
    e = families["all equal"]
    assert (e == e[:, :1]).all()


def test_families_of_an_enumerable_task_are_every_held_out_member():
    task = SortTask(6, 3, 0.25)
    fam = held_out_families(task)
    _check_families(task, fam)
    held = task.enumerate("test")
    assert torch.equal(fam["random"], held)
    n_sorted = int((held[:, 1:] >= held[:, :-1]).all(dim=1).sum())
    assert fam["already sorted"].size(0) == n_sorted > 0


def test_families_of_a_large_task_are_drawn():
    task = SortTask(16, 10, 0.25)  # 10**16 sequences: not listed
    fam = held_out_families(task, max_per_family=200)
    _check_families(task, fam)
    for name in ("random", "already sorted", "reverse sorted", "many repeats"):
        assert 0 < fam[name].size(0) <= 200, name


def test_analysis_of_a_trained_model_agrees_with_a_direct_count(tiny_run):
    model, task = tiny_run["model"], tiny_run["datamodule"].task
    result = analyse(model, task)
    held = task.enumerate("test")
    right = (model.sort(held).cpu() == task.solve(held))
    pos = result.group("position")
    assert [r.name for r in pos] == [str(i) for i in range(task.length)]
    for i, row in enumerate(pos):
        assert row.n == held.size(0)
        assert row.token_acc == right[:, i].float().mean().item()
        assert row.exact_match == right[:, :i + 1].all(dim=1).float().mean().item()
    assert pos[-1].exact_match == result.group("family")[0].exact_match  # all positions = exact match
    by_distinct = result.group("distinct digits")
    assert sum(r.n for r in by_distinct) == held.size(0)
    assert "exact match" in result.table() and "many repeats" in result.table()


def test_mistakes_are_listed_as_input_predicted_expected():
    torch.manual_seed(0)
    untrained = SortGPTModule(length=5, n_layer=1, n_head=2, d_model=16)
    result = analyse(untrained, untrained.task, num_mistakes=4)
    assert len(result.mistakes) == 4
    for inp, pred, expected in result.mistakes:
        assert expected == sorted(inp) and pred != expected and len(pred) == 5
    assert len({tuple(m[0]) for m in result.mistakes}) == 4
    assert any(r.exact_match is not None and r.exact_match < 1 for r in result.rows)


def test_eval_writes_the_error_analysis_png_and_tensorboard_figure(tiny_run, tmp_path, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_cfg("eval.yaml", [f"ckpt_path={tiny_run['best_model_path']}",
                                    "trainer.enable_progress_bar=false"], tmp_path)
    with caplog.at_level("INFO", logger="sortgpt"):
        evaluate(cfg)
    assert (tmp_path / "error_analysis.png").stat().st_size > 1000
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert "eval/error_analysis" in acc.Tags()["images"]
    text = caplog.text
    assert "Error analysis on held-out inputs" in text and "already sorted" in text
    assert text.count("final score: ") == 2  # the seed's lines are still there
