"""Quantization-aware fine-tuning: the same quantizers as the export, STE gradients, seeded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_quant_model import tiny_vit
from torch import nn

from codesign.data import DataSplits, TensorSplit
from codesign.qat import FinetuneSettings, finetune, frozen, trainable
from codesign.quant import (
    IntNonlinear,
    QuantConfig,
    QuantLinear,
    export_int_model,
    load_int_model,
    quantize_model,
)

CONFIGS = ["W4A8P0.5", "pot4A8"]


@pytest.fixture(scope="module")
def splits() -> DataSplits:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(96, 1, 28, 28, generator=gen)
    y = torch.randint(0, 5, (96,), generator=gen)
    return DataSplits(
        TensorSplit(x[:64], y[:64]), x[64:80], y[64:80], TensorSplit(x[80:], y[80:]), 5, tuple("abcde"), 0
    )


@pytest.mark.parametrize("precision", CONFIGS)
def test_untrained_latent_weights_give_back_the_post_training_model(
    precision: str, splits: DataSplits
) -> None:
    """Latent = FP32 weights, quantized with the export's scales and PoT masks: bit-identical."""
    fp32 = tiny_vit()
    ptq = quantize_model(fp32, QuantConfig.uniform(precision), splits.calib_x)
    back = frozen(trainable(ptq, fp32))
    with torch.no_grad():
        assert torch.equal(back(splits.test.x), ptq(splits.test.x))
    for name, mod in ptq.named_modules():
        if isinstance(mod, QuantLinear) and mod.qweight is not None:
            other = back.get_submodule(name)
            assert isinstance(other, QuantLinear) and other.qweight is not None
            assert torch.equal(other.qweight.codes, mod.qweight.codes)
            assert torch.equal(other.qweight.pot_mask, mod.qweight.pot_mask)


def test_gradients_reach_every_latent_weight_through_the_quantizers(splits: DataSplits) -> None:
    fp32 = tiny_vit()
    model = trainable(quantize_model(fp32, QuantConfig.uniform("W4A8P0.5"), splits.calib_x), fp32)
    loss = nn.functional.cross_entropy(model(splits.train.x), splits.train.y)
    loss.backward()  # type: ignore[no-untyped-call]
    latent = {n: p for n, p in model.named_parameters() if n.endswith("weight.original")}
    assert len(latent) == 2 * 4 + 2  # qkv, proj, fc1, fc2 per block, patch embedding, head
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in latent.values())


def test_finetune_is_seeded_and_exports_like_any_design(splits: DataSplits, tmp_path: Path) -> None:
    fp32 = tiny_vit()
    ptq = quantize_model(fp32, QuantConfig.uniform("W3A6P0.25"), splits.calib_x)
    settings = FinetuneSettings(epochs=2, lr=1e-3, batch=32, distill=True, seed=5)
    steps: list[int] = []
    a = finetune(ptq, fp32, splits, settings, lambda step, total, loss: steps.append(step))
    b = finetune(ptq, fp32, splits, settings)
    assert steps == [1, 2, 3, 4] and a.steps == 4
    with torch.no_grad():
        logits = a.model(splits.test.x)
        assert torch.equal(logits, b.model(splits.test.x))
        assert not torch.equal(logits, ptq(splits.test.x))  # the weights moved
    path = export_int_model(a.model, tmp_path / "model_int.pt")
    reloaded = load_int_model(path, tiny_vit)
    with torch.no_grad():
        assert torch.equal(reloaded(splits.test.x), logits)


def test_finetune_trains_through_the_shift_kernels(splits: DataSplits, tmp_path: Path) -> None:
    """``nonlinear: int`` with the shift kernels: every latent weight and every integer
    LayerNorm's γ, β get a gradient (straight through the kernels, which used to cut it); the
    frozen model keeps the kernels and exports and reloads exactly."""
    fp32 = tiny_vit()
    kernels = dict.fromkeys(("softmax", "layernorm", "gelu"), "shift")
    ptq = quantize_model(fp32, QuantConfig.uniform("W4A8", nonlinear="int", kernels=kernels), splits.calib_x)
    model = trainable(ptq, fp32)
    nn.functional.cross_entropy(model(splits.train.x), splits.train.y).backward()  # type: ignore[no-untyped-call]
    grads = {n: p.grad for n, p in model.named_parameters()}
    latent = [n for n in grads if n.endswith("weight.original")]
    affine = [n for n in grads if ".norm" in n or n.startswith("norm.")]
    assert len(latent) == 2 * 4 + 2 and len(affine) == 2 * (2 * 2 + 1)  # norm1, norm2 per block, final norm
    assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in latent + affine)
    result = finetune(ptq, fp32, splits, FinetuneSettings(epochs=1, lr=1e-3, batch=32, seed=1))
    found = {(m.kind, m.variant) for m in result.model.modules() if isinstance(m, IntNonlinear)}
    assert found == set(kernels.items())
    assert not any(isinstance(b, nn.Parameter) for b in result.model.buffers())
    reloaded = load_int_model(export_int_model(result.model, tmp_path / "model_int.pt"), tiny_vit)
    with torch.no_grad():
        logits = result.model(splits.test.x)
        assert torch.equal(reloaded(splits.test.x), logits)
        assert not torch.equal(logits, ptq(splits.test.x))
