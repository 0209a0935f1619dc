"""AttentionMaps: heatmaps in TensorBoard (read back from the event file) and PNGs in the run folder."""

from __future__ import annotations

import io

import torch

from sortgpt.callbacks import AttentionMaps
from sortgpt.module import SortGPTModule


def _images(tb_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"images": 0})
    acc.Reload()
    return {tag: acc.Images(tag) for tag in acc.Tags()["images"]}


def test_attention_maps_are_in_the_event_file_and_the_run_folder(tiny_run):
    from PIL import Image

    images = _images(tiny_run["out"] / "tensorboard")
    assert sorted(images) == ["attention/example_0", "attention/example_1"]
    trainer = tiny_run["trainer"]
    n_val = trainer.max_steps // trainer.val_check_interval
    for events in images.values():
        assert len(events) == n_val  # one image per validation
        assert [e.step for e in events] == sorted({e.step for e in events})
        img = Image.open(io.BytesIO(events[-1].encoded_image_string))
        assert img.width > 100 and img.height > 100
    pngs = sorted(p.name for p in (tiny_run["out"] / "attention_maps").iterdir())
    assert pngs == ["example_0.png", "example_1.png"]
    # the callback leaves the model as it found it: nothing recorded, nothing kept
    for block in tiny_run["model"].model.transformer.h:
        assert block.attn.record_attention is False and block.attn.attention is None


def test_attention_weights_use_the_manual_path_once_and_switch_back():
    torch.manual_seed(0)
    module = SortGPTModule(length=4, n_layer=2, n_head=2, d_model=16, dropout=0.1, attn_impl="sdpa")
    module.train()
    inputs = torch.tensor([[2, 0, 1, 1], [0, 0, 2, 1]])
    x, weights = AttentionMaps.attention_weights(module, inputs)
    T = module.task.block_size
    assert x.shape == (2, T) and len(weights) == 2
    for w in weights:
        assert w.shape == (2, 2, T, T)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, T))  # softmax rows
        assert (w.triu(diagonal=1) == 0).all()  # causal: no weight on later positions
    assert module.training  # restored
    for block in module.model.transformer.h:
        assert block.attn.attn_impl == "sdpa" and not block.attn.record_attention
        assert block.attn.attention is None
    fig = AttentionMaps.draw(x[0].tolist(), [w[0] for w in weights], 4, "t")
    assert len(fig.axes) == 2 * 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["2", "0", "1", "1", "0'", "1'", "1'"]


def test_attention_maps_rejects_a_bad_example_count():
    import pytest

    with pytest.raises(ValueError, match="num_examples must be a positive integer, got 0"):
        AttentionMaps(num_examples=0)
