"""eval.py re-scores a checkpoint: task and model come from the checkpoint alone."""

from __future__ import annotations

import pytest

from sortgpt.module import SortGPTModule
from sortgpt.pipeline import evaluate
from tests.conftest import compose_cfg


def test_eval_rescores_checkpoint_to_the_same_figure(tiny_run, tmp_path):
    best = tiny_run["best_model_path"]
    cfg = compose_cfg("eval.yaml", [f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path)
    metrics, objects = evaluate(cfg)
    assert objects["model"].scores == tiny_run["model"].scores
    assert metrics["test/exact_match"] == tiny_run["metrics"]["test/exact_match"]
    assert objects["datamodule"].task.length == 4  # from the checkpoint, not from any config


def test_load_from_checkpoint_needs_no_arguments(tiny_run):
    model = SortGPTModule.load_from_checkpoint(tiny_run["best_model_path"], map_location="cpu")
    assert model.task.length == 4 and model.model.config.d_model == 48
    held_out = model.task.enumerate("test")
    assert (model.sort(held_out) == model.task.solve(held_out)).all()


def test_eval_refuses_a_task_that_disagrees_with_the_checkpoint(tiny_run, tmp_path):
    cfg = compose_cfg("eval.yaml", [f"ckpt_path={tiny_run['best_model_path']}", "data.length=6"], tmp_path)
    with pytest.raises(ValueError, match="data.length=6 disagrees with the checkpoint"):
        evaluate(cfg)


def test_eval_sampled_scoring_with_overrides(tiny_run, tmp_path):
    cfg = compose_cfg("eval.yaml", [f"ckpt_path={tiny_run['best_model_path']}", "data.full_eval=false",
                                    "data.score_size=300", "trainer.enable_progress_bar=false"], tmp_path)
    metrics, objects = evaluate(cfg)
    assert objects["model"].scores["test"] == (300, 300)
