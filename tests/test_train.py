"""Training through train(): a fast_dev_run, and a real short training that sorts every held-out sequence."""

from __future__ import annotations

import logging

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from sortgpt.pipeline import train
from tests.conftest import TINY, compose_cfg


def _events(folder) -> EventAccumulator:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def test_fast_dev_run(tmp_path):
    # enable_progress_bar=false also drops the configured RichProgressBar instead of failing
    cfg = compose_cfg("train.yaml", ["debug=fast_dev_run", "trainer.enable_progress_bar=false"], tmp_path)
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 1
    # one scoring batch per split
    assert set(objects["model"].scores) == {"train", "test"}
    assert 0.0 <= metrics["test/exact_match"] <= 1.0


def test_short_training_sorts_every_held_out_sequence(tiny_run):
    """A small model trained through train() on length-4 sorting gets every held-out sequence right."""
    model, datamodule = tiny_run["model"], tiny_run["datamodule"]
    held_out = datamodule.task.enumerate("test")
    assert tiny_run["model"].scores["test"] == (len(held_out), len(held_out))  # full_eval: each once
    assert tiny_run["metrics"]["test/exact_match"] == 1.0
    assert tiny_run["metrics"]["val/exact_match"] == 1.0
    preds = model.sort(held_out)
    assert (preds == datamodule.task.solve(held_out)).all()
    assert tiny_run["trainer"].global_step == 400


def test_run_folder_holds_checkpoints(tiny_run):
    ckpts = tiny_run["out"] / "checkpoints"
    assert (ckpts / "last.ckpt").is_file()
    best = tiny_run["best_model_path"]
    assert best and best.startswith(str(ckpts)) and "best_step" in best


def test_tensorboard_holds_named_scalars_and_hparams(tiny_run):
    ea = _events(tiny_run["out"] / "tensorboard")
    tags = set(ea.Tags()["scalars"])
    for name in ("train/loss", "val/loss", "val/exact_match", "test/exact_match", "train/exact_match"):
        assert name in tags, (name, tags)
    lr_tags = [t for t in tags if t.startswith("lr-AdamW")]
    assert lr_tags and all(abs(ea.Scalars(t)[0].value - 3e-3) < 1e-9 for t in lr_tags)
    assert len(ea.Scalars("train/loss")) >= 400 // 10 - 1
    assert ea.Scalars("val/exact_match")[-1].value == 1.0
    assert ea.Scalars("test/exact_match")[-1].value == 1.0
    # HPARAMS tab: hyperparameters with real metrics, not the hp_metric=-1 placeholder
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["n_layer"].number_value == 2 and hp["d_model"].number_value == 48
    assert "hp_metric" not in tags
    assert ea.Scalars("hp/test_exact_match")[-1].value == 1.0
    assert ea.Scalars("hp/val_exact_match")[-1].value == 1.0


def test_seed_log_lines(tmp_path, caplog):
    cfg = compose_cfg("train.yaml", TINY + ["trainer.max_steps=101", "trainer.val_check_interval=101"],
                      tmp_path)
    with caplog.at_level(logging.INFO):
        train(cfg)
    text = caplog.text
    assert "number of parameters: 0.06M" in text
    assert "iter 0: train loss" in text and "iter 100: train loss" in text and "iter_dt" in text
    assert "x = [" in text and "y = [-1, -1, -1," in text
    i_train = text.index("Evaluating on train set...")
    i_test = text.index("Evaluating on test set...")
    assert i_train < i_test
    assert text.count("final score: ") == 2 and "% correct" in text
    for key in ("input sequence   :", "predicted sorted :", "gt sort          :", "matches          :"):
        assert key in text
