"""Tests for sortgpt/module.py's speed options: torch.compile and bf16-mixed precision, on CPU."""

import lightning.pytorch as L
import pytest
import torch

from sortgpt.data import SortDataModule
from sortgpt.module import SortGPTModule

SMALL = dict(length=3, num_digits=3, n_layer=1, n_head=2, d_model=16, dropout=0.0)


def _fit(model: SortGPTModule, steps: int, precision: str = "32") -> SortGPTModule:
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, precision=precision,
                        limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0)
    trainer.fit(model, datamodule=SortDataModule(length=3, num_digits=3, batch_size=32, seed=0))
    return model


def _params(model: SortGPTModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.model.state_dict().items()}


def test_compile_trains_like_eager():
    torch.manual_seed(0)
    eager = _fit(SortGPTModule(**SMALL), steps=3)
    torch.manual_seed(0)
    compiled = SortGPTModule(**SMALL, compile=True)
    start = _params(compiled)
    compiled = _fit(compiled, steps=3)
    after = _params(compiled)
    assert set(after) == set(_params(eager))  # compiling keeps the GPT-2 state-dict layout
    assert any(not torch.equal(start[k], after[k]) for k in after)  # it trained
    for k, v in _params(eager).items():
        torch.testing.assert_close(after[k], v, atol=1e-4, rtol=1e-3)


def test_bf16_mixed_trains_on_cpu():
    torch.manual_seed(0)
    model = SortGPTModule(**SMALL)
    before = _params(model)
    data = SortDataModule(length=3, num_digits=3, batch_size=32, seed=0)
    x, y = next(iter(data.train_dataloader()))
    loss0 = model.model(x, y)[1].item()
    _fit(model, steps=60, precision="bf16-mixed")
    after = _params(model)
    assert all(v.dtype == torch.float32 for v in after.values())  # master weights stay fp32
    assert any(not torch.equal(before[k], after[k]) for k in after)
    loss = model.model(x, y)[1].item()
    assert loss == pytest.approx(loss, nan_ok=False) and loss < loss0  # finite and learning
