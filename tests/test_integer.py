"""Integer-only inference (codesign.quant._integer): one integer Linear against an exact integer
reference, the log2 softmax codes against the fake quantizer, the whole program against the
fake-quantized model (every kernel variant and softmax quantizer), int64 inside, bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_quant_model import tiny_vit
from torch import nn

from codesign.cli.integer_check import entry
from codesign.errors import UserError
from codesign.models import load_default
from codesign.quant import (
    VARIANTS,
    Calibration,
    IntegerViT,
    LayerQuant,
    QuantConfig,
    export_int_model,
    integer_model,
    layer_names,
    load_int_model,
    quantize_integer_model,
    quantize_model,
    quantize_weight,
)
from codesign.quant._integer import (
    MAX_INTEGER_POT_BITS,
    RESIDUAL_BITS,
    IntegerLinear,
    IntWeight,
    Rescale,
    int_matmul,
    log2_codes,
)
from codesign.quant._quantizers import QUANTIZERS, pot_min_exponent
from hwmodel.arch.intops import NONLINEAR_BITS

PRECISIONS = ("W8A8", "W4A8P0.5", "pot4A8", "W6A6")
SOFTMAX = ("uniform", "log2")


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_vit()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(24, 1, 28, 28, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def calibration(model: nn.Module, images: torch.Tensor) -> Calibration:
    return Calibration(model, images[:16])


def config(precision: str, kernel: str = "poly", softmax: str = "uniform") -> QuantConfig:
    return QuantConfig.uniform(
        precision,
        nonlinear="int",
        softmax=softmax,
        kernels=dict.fromkeys(("softmax", "layernorm", "gelu"), kernel),
    )


# ----------------------------------------------------------------------------- one layer


@pytest.mark.parametrize(("bits", "ratio"), [(8, 0.0), (4, 0.5), (4, 1.0), (5, 0.25), (3, 0.0)])
def test_integer_linear_is_the_exact_integer_sum(bits: int, ratio: float) -> None:
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(12, 40, generator=gen)
    b = torch.randn(12, generator=gen)
    qw = quantize_weight(w, bits, ratio, method="max")
    iw = IntWeight.from_qweight(qw, "layer")
    # PoT channels hold ±2^(e − e_min), fixed-point channels their codes; same real weight
    e_min = pot_min_exponent(bits)
    for c in range(12):
        vals = iw.values[c].tolist()
        if bool(qw.pot_mask[c]):
            assert all(v == 0 or abs(v) & (abs(v) - 1) == 0 for v in vals)
            assert max(abs(v) for v in vals) <= 2 ** (-e_min)
        else:
            assert vals == qw.codes[c].long().tolist()
    assert torch.allclose(iw.dequantize().float(), qw.dequantize(), rtol=1e-6, atol=1e-9)
    in_scale = 0.037
    lin = IntegerLinear("layer", iw, b, in_scale, 8)
    x = torch.randint(-128, 128, (3, 5, 40), generator=gen)
    acc = lin(x)
    assert acc.dtype == torch.int64
    bias = [round(float(b[c]) / (in_scale * float(iw.unit[c]))) for c in range(12)]
    ref = [
        [sum(xi * wi for xi, wi in zip(row, iw.values[c].tolist(), strict=True)) + bias[c] for c in range(12)]
        for row in x.reshape(-1, 40).tolist()
    ]
    assert acc.reshape(-1, 12).tolist() == ref
    # and it is the fake-quantized layer's value, up to the bias rounded to the accumulator's unit
    fq = F.linear(x.double() * in_scale, iw.dequantize(), b.double())
    assert bool(((acc.double() * lin.acc_unit - fq).abs() <= 0.5 * lin.acc_unit + 1e-9).all())


def test_accumulators_wider_than_32_bits_are_refused() -> None:
    qw = quantize_weight(torch.randn(4, 512), 16, 0.0, method="max")
    with pytest.raises(UserError, match="accumulators within 32 bits"):
        IntegerLinear("blocks.0.mlp.fc2", IntWeight.from_qweight(qw, "x"), None, 0.1, 16)


def test_int_matmul_is_exact_in_both_paths() -> None:
    gen = torch.Generator().manual_seed(3)
    small = torch.randint(-128, 128, (7, 33), generator=gen), torch.randint(-128, 128, (33, 5), generator=gen)
    big = (
        torch.randint(-(2**20), 2**20, (7, 33), generator=gen),
        torch.randint(-(2**20), 2**20, (33, 5), generator=gen),
    )
    for a, b in (small, big):  # int32 path, int64 path
        out = int_matmul(a, b)
        assert out.dtype == torch.int64
        assert out.tolist() == [
            [sum(x * y for x, y in zip(r, c, strict=True)) for c in b.t().tolist()] for r in a.tolist()
        ]


@pytest.mark.parametrize("bits", range(2, 9))
def test_log2_codes_are_the_log2_quantizer(bits: int) -> None:
    p = torch.arange(0, 1 << 16, dtype=torch.int64)
    ours = log2_codes(p, 16, bits).double() * 2.0**-16
    ref = QUANTIZERS["log2"](p.float() * 2.0**-16, torch.tensor(1.0), bits).double()
    ref[0] = 0.0  # p = 0: float32 leaves 2^−126 at 8 bits (2^(e_min−1) underflows); the code is 0
    assert torch.equal(ours, ref)


def _integer_form(name: str, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integer program's values, quantizer's values) of quantizer ``name`` on the same inputs:
    16-bit codes rescaled dyadically (fixed, unsigned), a PoT weight's ±2^(e − e_min) times its
    unit, the log2 codes of softmax probabilities."""
    q = QUANTIZERS[name]
    x = torch.arange(-(1 << 15), 1 << 15, 7, dtype=torch.int64)
    if name in ("fixed", "unsigned"):
        s, unit = 0.01234567, 2.0**-12
        ours = Rescale.to_codes(unit / s, bits, signed=q.signed)(x).double() * s
        return ours, q(x.double() * unit, torch.tensor(s, dtype=torch.float64), bits)
    if name == "pot":
        w = x.double().reshape(1, -1) * 2.0**-15
        qw = quantize_weight(w.float(), bits, 1.0, method="max")
        return IntWeight.from_qweight(qw, "w").dequantize(), qw.dequantize().double()
    if name != "log2":
        raise KeyError(f"quantizer {name!r}: no integer form in this test")
    p = x.clamp(min=0)
    ref = q(p.double() * 2.0**-16, torch.tensor(1.0, dtype=torch.float64), bits)
    return log2_codes(p, 16, bits).double() * 2.0**-16, torch.where(p == 0, 0.0, ref)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_every_quantizer_has_its_integer_form(name: str, bits: int) -> None:
    """A quantizer added to the registry needs its integer form here; PoT codes wider than the
    integer program takes are one clear error."""
    if name == "pot" and bits > MAX_INTEGER_POT_BITS:
        with pytest.raises(UserError, match="PoT codes of ≤ 6 bits"):
            _integer_form(name, bits)
        return
    ours, ref = _integer_form(name, bits)
    assert torch.allclose(ours, ref, rtol=1e-6, atol=0.0)


# ----------------------------------------------------------------------------- whole model


def _agreement(fq: torch.Tensor, iz: torch.Tensor) -> float:
    return float((fq.argmax(-1) == iz.argmax(-1)).float().mean())


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("kernel", VARIANTS)
@pytest.mark.parametrize("softmax", SOFTMAX)
def test_integer_model_follows_fake_quant(
    model: nn.Module,
    images: torch.Tensor,
    calibration: Calibration,
    precision: str,
    kernel: str,
    softmax: str,
) -> None:
    """The integer program lies no further from the fake-quantized model than that model lies
    from FP32 (their difference: a few codes rounded the other way, which later layers carry on),
    and picks the same class for nearly every image."""
    cfg = config(precision, kernel, softmax)
    qmodel = quantize_model(model, cfg, calibration)
    im = integer_model(qmodel)
    with torch.no_grad():
        f32, fq, iz = model(images), qmodel(images), im(images)
    assert iz.dtype == torch.float32 and iz.shape == fq.shape
    assert float((fq - iz).abs().max()) <= float((fq - f32).abs().max())
    assert _agreement(fq, iz) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "kernel"), [("W8A8", "poly"), ("W4A8P0.5", "shift")])
def test_default_model_on_a_handful_of_images(precision: str, kernel: str) -> None:
    model, splits = load_default()
    cal = Calibration(model, splits.calib_x[:64])
    qmodel = quantize_model(model, config(precision, kernel), cal)
    x = splits.test.head(16)
    with torch.no_grad():
        f32, fq, iz = model(x), qmodel(x), integer_model(qmodel)(x)
    assert _agreement(fq, iz) == 1.0
    assert float((fq - iz).abs().max()) <= 0.5 * float((fq - f32).abs().max())  # 0.35 / 0.15 measured


def test_everything_between_the_boundaries_is_int64(
    model: nn.Module, images: torch.Tensor, calibration: Calibration
) -> None:
    im = quantize_integer_model(model, config("W4A8P0.5", "shift"), calibration)
    seen: list[str] = []

    def check(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen.append(type(mod).__name__)
        assert all(a.dtype == torch.int64 for a in args)
        assert out.dtype == torch.int64

    hooks = [m.register_forward_hook(check) for m in im.modules() if m is not im]
    acc = im.accumulators(images[:4])
    for h in hooks:
        h.remove()
    assert acc.dtype == torch.int64
    assert {"IntegerLinear", "IntegerLayerNorm", "IntegerBlock"} <= set(seen)
    codes = im.features(im.codes(images[:4]))
    assert int(codes.abs().max()) < 2 ** (RESIDUAL_BITS - 1)


def test_batch_invariant_and_deterministic(
    model: nn.Module, images: torch.Tensor, calibration: Calibration
) -> None:
    im = quantize_integer_model(model, config("W8A8"), calibration)
    whole = im.accumulators(images[:6])
    parts = torch.cat([im.accumulators(images[i : i + 1]) for i in range(6)])
    assert torch.equal(whole, parts)
    assert torch.equal(whole, im.accumulators(images[:6]))


def test_reloaded_export_gives_the_same_integer_program(
    model: nn.Module, images: torch.Tensor, calibration: Calibration, tmp_path: Path
) -> None:
    qmodel = quantize_model(model, config("W4A8P0.5"), calibration)
    path = export_int_model(qmodel, tmp_path / "model_int.pt")
    again = integer_model(load_int_model(path, tiny_vit))
    assert torch.equal(integer_model(qmodel).accumulators(images[:4]), again.accumulators(images[:4]))


def test_searched_design_with_every_layer_named_runs(
    model: nn.Module, images: torch.Tensor, calibration: Calibration
) -> None:
    """A searched design names every layer and leaves its default float (W32A32): the integer
    program runs it as the uniform config of the same precisions; a layer left to that default
    is refused."""
    uniform = config("W4A8P0.5")
    names = layer_names(model)
    every = replace(uniform, default=LayerQuant(32, 32, 0.0), layers={n: uniform.for_layer(n) for n in names})
    want = integer_model(quantize_model(model, uniform, calibration)).accumulators(images[:4])
    got = quantize_integer_model(model, every, calibration).accumulators(images[:4])
    assert torch.equal(got, want)
    missing = replace(every, layers={n: lq for n, lq in every.layers.items() if n != "blocks.1.mlp.fc2"})
    with pytest.raises(UserError, match=r"^default: integer inference needs every layer quantized"):
        quantize_integer_model(model, missing, calibration)


def test_nonlinear_ops_run_the_integer_kernels(model: nn.Module, calibration: Calibration) -> None:
    im = integer_model(quantize_model(model, config("W8A8", "shift"), calibration))
    assert isinstance(im, IntegerViT)
    blk = im.blocks[0]
    assert blk.soft_op.variant == blk.gelu_op.variant == blk.norm1.op.variant == "shift"
    assert blk.soft_spec.in_bits == NONLINEAR_BITS


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (QuantConfig.uniform("W8A8"), "nonlinear: int"),
        (QuantConfig.uniform("W8", nonlinear="int"), "every layer quantized, got W8A32"),
        (
            QuantConfig.uniform("W8A8", nonlinear="int").with_layers({"head": "fp32"}),
            "layers.head: .*every layer",
        ),
        (QuantConfig.uniform("W8A8P0.5", nonlinear="int"), "PoT codes of ≤ 6 bits"),
    ],
)
def test_configs_it_cannot_run_are_one_line_errors(
    model: nn.Module, calibration: Calibration, cfg: QuantConfig, match: str
) -> None:
    with pytest.raises(UserError, match=match) as info:
        quantize_integer_model(model, cfg, calibration)
    assert "\n" not in str(info.value)


def test_non_standard_vit_is_refused(images: torch.Tensor) -> None:
    avg = tiny_vit(global_pool="avg", class_token=False)
    with pytest.raises(UserError, match="standard timm ViT only"):
        quantize_integer_model(avg, config("W8A8"), images[:8])


def test_not_a_quantized_model_is_refused(model: nn.Module) -> None:
    with pytest.raises(UserError, match="not a model returned by quantize_model"):
        integer_model(model)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--precision", "W8"], "every layer quantized"),
        (["--precision", "X9"], "precision 'X9'"),
        (["--precision", "W8A8P0.5"], "PoT codes"),
        (["--kernels", "bogus"], "--kernels"),
        (["--images", "0"], "--images"),
        (["--softmax", "exp"], "--softmax"),
    ],
)
def test_command_bad_input_is_one_line(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = entry(argv)
    except SystemExit as exc:  # argparse's own checks exit from the parser
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("codesign.integer_check: error:")
    assert match in err


@pytest.mark.slow
def test_command_on_the_default_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = entry(["--images", "40", "--precision", "W8A8", "--kernels", "poly", "--json"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    (row,) = res["rows"]
    assert res["images"] == 40 and row["precision"] == "W8A8" and row["kernels"]["softmax"] == "poly"
    assert row["same_top1"] >= 39
    assert abs(row["integer_top1"] - row["fake_quant_top1"]) <= 2.5
