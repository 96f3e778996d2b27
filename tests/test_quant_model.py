"""quantize_model on a small random timm ViT: exactness at 32 bits, levels, mixed scheme, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from codesign.errors import UserError
from codesign.quant import (
    INT_OPS,
    QUANTIZERS,
    Calibration,
    IntNonlinear,
    LayerQuant,
    QuantAttention,
    QuantConfig,
    QuantLinear,
    export_int_model,
    layer_names,
    load_int_model,
    nonlinear_modules,
    nonlinear_points,
    parse_precision,
    quantize_model,
    quantize_weight,
)
from codesign.quant._quantizers import pot_decode
from hwmodel.target.timm_compat import import_timm

timm = import_timm()


def tiny_vit(**kwargs: object) -> nn.Module:
    """A 2-block ViT on 28×28 one-channel images, 5 classes (``kwargs`` override timm's arguments)."""
    torch.manual_seed(0)
    args: dict[str, object] = dict(
        img_size=28, patch_size=7, in_chans=1, num_classes=5, embed_dim=24, depth=2, num_heads=2
    )
    args.update(kwargs)
    m: nn.Module = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args)
    return m.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_vit()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def calibration(model: nn.Module, images: torch.Tensor) -> Calibration:
    return Calibration(model, images)


def test_layer_names(model: nn.Module) -> None:
    names = layer_names(model)
    assert names[0] == "patch_embed.proj" and names[-1] == "head"
    assert names[1:7] == [
        "blocks.0.attn.qkv",
        "blocks.0.attn.qk",
        "blocks.0.attn.sv",
        "blocks.0.attn.proj",
        "blocks.0.mlp.fc1",
        "blocks.0.mlp.fc2",
    ]
    assert len(names) == 2 + 6 * 2


def test_w32a32_is_fp32_exactly(model: nn.Module, images: torch.Tensor) -> None:
    q = quantize_model(model, QuantConfig.uniform("W32A32"), images)
    assert q is not model
    with torch.no_grad():
        assert torch.equal(q(images), model(images))


def test_quantize_model_leaves_original_untouched(
    model: nn.Module, images: torch.Tensor, calibration: Calibration
) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantize_model(model, QuantConfig.uniform("W2A4"), calibration)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_quantized_modules_and_error_order(
    model: nn.Module, images: torch.Tensor, calibration: Calibration
) -> None:
    with torch.no_grad():
        ref = model(images)
        errs = {
            p: float((quantize_model(model, QuantConfig.uniform(p), calibration)(images) - ref).abs().mean())
            for p in ("W8A8", "W4A8", "W2A8")
        }
    assert 0 < errs["W8A8"] < errs["W4A8"] < errs["W2A8"]
    q = quantize_model(model, QuantConfig.uniform("W8A8"), calibration)
    assert isinstance(q.blocks[0].attn, QuantAttention)
    assert isinstance(q.blocks[1].mlp.fc2, QuantLinear)


def test_per_layer_override_only_touches_that_layer(model: nn.Module, calibration: Calibration) -> None:
    cfg = QuantConfig(LayerQuant(32, 32), {"blocks.1.mlp.fc1": LayerQuant(4, 8, 0.5)})
    q = quantize_model(model, cfg, calibration)
    assert isinstance(q.blocks[1].mlp.fc1, QuantLinear)
    assert isinstance(q.blocks[0].mlp.fc1, nn.Linear)
    assert not isinstance(q.blocks[0].attn, QuantAttention)
    w = q.blocks[1].mlp.fc1.weight
    qw = q.blocks[1].mlp.fc1.qweight
    assert qw is not None and qw.pot_ratio == pytest.approx(0.5)
    torch.testing.assert_close(w, qw.dequantize())


def test_weights_lie_on_levels(model: nn.Module) -> None:
    w = model.blocks[0].mlp.fc1.weight
    for bits in (2, 3, 4, 8):
        qw = quantize_weight(w, bits, 0.0)
        assert int(qw.codes.abs().max()) <= 2 ** (bits - 1)
        q = qw.dequantize() / qw.scale[:, None]
        torch.testing.assert_close(q, torch.round(q))
        # idempotent: quantizing the quantized weight again with its scales changes nothing
        deq = qw.dequantize()
        again = QUANTIZERS["fixed"](deq, qw.scale[:, None], bits)
        torch.testing.assert_close(again, deq, rtol=1e-6, atol=1e-8)


def test_pot_weights_are_powers_of_two(model: nn.Module) -> None:
    qw = quantize_weight(model.blocks[0].mlp.fc2.weight, 4, 1.0)
    assert bool(qw.pot_mask.all())
    v = (qw.dequantize() / qw.scale[:, None]).abs()
    nz = v[v > 0]
    e = torch.log2(nz)
    torch.testing.assert_close(e, torch.round(e))
    assert float(e.min()) >= -6 and float(e.max()) <= 0


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_mixed_ratio_is_the_same_in_every_head(model: nn.Module, ratio: float) -> None:
    attn = model.blocks[0].attn
    heads, hd = attn.num_heads, attn.head_dim
    qw = quantize_weight(attn.qkv.weight, 4, ratio, groups=3 * heads)
    per_head = qw.pot_mask.reshape(3 * heads, hd).sum(1)
    assert bool((per_head == round(ratio * hd)).all())
    # PoT channels decode to powers of two, fixed channels to integers
    c = qw.codes.float()
    pot_vals = pot_decode(c[qw.pot_mask], 4).abs()
    nz = pot_vals[pot_vals > 0]
    torch.testing.assert_close(torch.log2(nz), torch.round(torch.log2(nz)))


def test_mixed_is_between_fixed_and_pot_in_error(model: nn.Module) -> None:
    w = model.blocks[1].mlp.fc1.weight.detach()
    err = {r: float(((quantize_weight(w, 4, r).dequantize() - w) ** 2).sum()) for r in (0.0, 0.5, 1.0)}
    assert err[0.0] <= err[0.5] <= err[1.0]


def test_export_and_reload_exact(
    model: nn.Module, images: torch.Tensor, calibration: Calibration, tmp_path: Path
) -> None:
    cfg = QuantConfig(
        parse_precision("W4A8P0.5"),
        {"head": LayerQuant(8, 8), "blocks.0.attn.sv": LayerQuant(6, 4)},
        softmax="log2",
    )
    q = quantize_model(model, cfg, calibration)
    path = export_int_model(q, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["weights"]["blocks.0.mlp.fc1"]["codes"].dtype == torch.int8
    for factory in (tiny_vit, tiny_vit()):
        back = load_int_model(path, factory)
        with torch.no_grad():
            assert torch.equal(back(images), q(images))
        assert back.quant_config == cfg


def test_bad_inputs(model: nn.Module, images: torch.Tensor, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown layer 'blocks\.7\.mlp\.fc1'"):
        quantize_model(model, QuantConfig(LayerQuant(8, 8), {"blocks.7.mlp.fc1": "W4A8"}), images)
    with pytest.raises(UserError, match="not found"):
        load_int_model(tmp_path / "nope.pt", tiny_vit)
    with pytest.raises(UserError, match="not a model returned"):
        export_int_model(model, tmp_path / "x.pt")
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(UserError, match="not a timm VisionTransformer"):
        quantize_model(cnn, QuantConfig.uniform("W8A8"), images)


def test_log2_softmax_differs_from_uniform(
    model: nn.Module, images: torch.Tensor, calibration: Calibration
) -> None:
    base = QuantConfig.uniform("W32A4")
    with torch.no_grad():
        a = quantize_model(model, base, calibration)(images)
        b = quantize_model(model, QuantConfig(base.default, {}, softmax="log2"), calibration)(images)
    assert not torch.equal(a, b)


# ----------------------------------------------------------------------------- integer non-linear ops


@pytest.mark.parametrize("kind", sorted(INT_OPS))
@pytest.mark.parametrize("frac", [4, 9, 12])
def test_fake_quant_nonlinear_is_the_integer_kernel_bit_exactly(kind: str, frac: int) -> None:
    """The module (float tensors carrying integers × 2^−F) equals the pure integer path: codes
    rounded (half to even) and clamped in float64 numpy, the kernel, the output scale."""
    gen = torch.Generator().manual_seed(frac)
    x = torch.randn(50, 3, 37, generator=gen) * 2.0 ** (14 - frac) / 3
    x[0, 0, :] = 0.7  # an all-equal row (zero variance)
    x[0, 1, :5] = -1e6  # saturating codes
    mod = IntNonlinear(kind, 2.0**-frac)
    y = mod(x)
    codes = np.clip(np.rint(x.numpy().astype(np.float64) * 2.0**frac), -(2**15), 2**15 - 1).astype(np.int64)
    want = INT_OPS[kind](codes, mod.spec)
    assert np.array_equal(y.numpy().astype(np.float64) * 2.0**mod.spec.out_frac, want.astype(np.float64))


def test_int_nonlinear_model(model: nn.Module, images: torch.Tensor, calibration: Calibration) -> None:
    cfg = QuantConfig.uniform("W8A8", nonlinear="int")
    q = quantize_model(model, cfg, calibration)
    replaced = [n for n, m in q.named_modules() if isinstance(m, IntNonlinear)]
    # every LayerNorm and GELU, and one softmax per block
    assert len(replaced) == len(nonlinear_modules(model)) + 2 == len(nonlinear_points(model))
    assert not any(isinstance(m, nn.LayerNorm | nn.GELU) for m in q.modules())
    with torch.no_grad():
        ref, fl, it = (
            model(images),
            quantize_model(model, cfg.__class__.uniform("W8A8"), calibration)(images),
            q(images),
        )
    assert not torch.equal(fl, it)
    # the integer operators add little error on top of W8A8
    assert float((it - ref).abs().mean()) < 2 * float((fl - ref).abs().mean()) + 0.02
    # LayerNorm's γ, β are kept; the power-of-two input scale covers the calibrated range
    ln = q.blocks[0].norm1
    assert isinstance(ln, IntNonlinear) and torch.equal(ln.weight, model.blocks[0].norm1.weight)
    assert ln.in_scale == calibration.nonlinear_scale("blocks.0.norm1:in")


def test_int_nonlinear_export_reload(
    model: nn.Module, images: torch.Tensor, calibration: Calibration, tmp_path: Path
) -> None:
    q = quantize_model(model, QuantConfig.uniform("W6A8", nonlinear="int"), calibration)
    back = load_int_model(export_int_model(q, tmp_path / "m.pt"), tiny_vit)
    with torch.no_grad():
        assert torch.equal(back(images), q(images))
    assert back.quant_config.nonlinear == "int"


def test_nonlinear_choice_is_validated() -> None:
    with pytest.raises(UserError, match="nonlinear='fixed': allowed float, int"):
        QuantConfig.uniform("W8A8", nonlinear="fixed")
    cfg = QuantConfig.from_json('{"default": "W8A8", "nonlinear": "int"}')
    assert cfg.nonlinear == "int" and QuantConfig.from_dict(cfg.to_dict()) == cfg
    assert hash(cfg) != hash(QuantConfig.uniform("W8A8"))
