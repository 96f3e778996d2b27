"""Contract tests over every quantizer in the registry, and the §3 equations."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.errors import UserError
from codesign.quant import QUANTIZERS, get_quantizer
from codesign.quant import _quantizers as quantizers
from codesign.quant._quantizers import (
    channel_scales,
    pot_codes,
    pot_decode,
    pot_min_exponent,
    quantize_pot,
    tensor_scale,
)

NAMES = sorted(QUANTIZERS)
BITS = st.integers(min_value=2, max_value=8)
floats = st.floats(min_value=-50, max_value=50, allow_nan=False, width=32)
tensors = st.lists(floats, min_size=1, max_size=64).map(lambda v: torch.tensor(v))
scales = st.floats(min_value=1e-3, max_value=10.0).map(lambda s: torch.tensor(s))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(x=tensors, s=scales, bits=BITS)
def test_idempotent(name: str, x: torch.Tensor, s: torch.Tensor, bits: int) -> None:
    q = QUANTIZERS[name]
    once = q(x, s, bits)
    torch.testing.assert_close(q(once, s, bits), once, rtol=1e-6, atol=1e-6 * float(s))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(x=tensors, s=scales, bits=BITS)
def test_outputs_are_levels(name: str, x: torch.Tensor, s: torch.Tensor, bits: int) -> None:
    q = QUANTIZERS[name]
    out = (q(x, s, bits) / s).double()
    levels = q.levels(bits)
    dist = (out[:, None] - levels[None, :]).abs().min(dim=1).values
    assert float(dist.max()) < 1e-4 * max(1.0, float(levels.abs().max()))
    assert len(levels) <= 2**bits


@pytest.mark.parametrize("name", NAMES)
def test_nearest_level_inside_range(name: str) -> None:
    """Within range every quantizer returns the nearest level (in its rounding domain)."""
    q = QUANTIZERS[name]
    bits = 4
    levels = q.levels(bits).float()
    lo = float(levels.min()) if q.signed else 0.0
    x = torch.linspace(lo, float(levels.max()), 2001)
    out = q(x, torch.tensor(1.0), bits)
    if name in ("fixed", "unsigned"):
        assert float((out - x).abs().max()) <= 0.5 + 1e-6
    else:  # log-domain rounding: within a factor √2 of the input above the smallest level
        smallest = float(levels[levels > 0].min())
        nz = x.abs() >= smallest
        ratio = (out[nz] / x[nz]).abs()
        assert float(ratio.max()) <= math.sqrt(2) + 1e-5
        assert float(ratio.min()) >= 1 / math.sqrt(2) - 1e-5


@settings(max_examples=100, deadline=None)
@given(x=tensors, s=scales, bits=BITS)
def test_fixed_error_bound_inside_range(x: torch.Tensor, s: torch.Tensor, bits: int) -> None:
    qmax = 2 ** (bits - 1) - 1
    inside = x.abs() <= qmax * s
    err = (QUANTIZERS["fixed"](x, s, bits) - x).abs()
    assert bool((err[inside] <= s / 2 * (1 + 1e-5) + 1e-6).all())


@settings(max_examples=100, deadline=None)
@given(x=tensors, s=scales, bits=BITS)
def test_pot_is_signed_power_of_two_or_zero(x: torch.Tensor, s: torch.Tensor, bits: int) -> None:
    out = quantize_pot(x, s, bits) / s
    nz = out != 0
    e = torch.log2(out[nz].abs())
    assert bool((e == torch.round(e)).all())
    assert bool(((e >= pot_min_exponent(bits)) & (e <= 0)).all())
    assert bool((torch.sign(out[nz]) == torch.sign(x[nz])).all())


def test_pot_both_ends() -> None:
    """4 bits: e ∈ [−6, 0]; ≥ 1 clips to 1; 2^−6.6 rounds (log domain) to e = −7, clamped to
    −6; only values below 2^−7 (half the smallest level) become zero."""
    s = torch.tensor(1.0)
    assert pot_min_exponent(4) == -6
    x = torch.tensor([5.0, 1.0, 0.75, 2**-6, 2**-6.6, 2**-7 * 1.01, 2**-7 * 0.99, 0.0, -0.3])
    out = quantize_pot(x, s, 4)
    expected = torch.tensor([1.0, 1.0, 1.0, 2**-6, 2**-6, 2**-6, 0.0, 0.0, -0.25])
    torch.testing.assert_close(out, expected)
    # 0.75 = 2^-0.415 rounds up in the log domain; 0.7 = 2^-0.51 rounds down to 0.5
    assert float(quantize_pot(torch.tensor(0.7), s, 4)) == 0.5
    # 2 bits: levels {0, ±s} only; below half the smallest level (0.5) is zero
    torch.testing.assert_close(
        quantize_pot(torch.tensor([0.6, -0.5, -0.4, 0.1]), s, 2),
        torch.tensor([1.0, -1.0, 0.0, 0.0]),
    )


def test_pot_codes_roundtrip() -> None:
    x = torch.linspace(-1.5, 1.5, 301)
    for bits in (2, 3, 4, 6, 8):
        codes = pot_codes(x, torch.tensor(1.0), bits)
        assert float(codes.abs().max()) <= 2 ** (bits - 1) - 1
        torch.testing.assert_close(pot_decode(codes, bits), quantize_pot(x, torch.tensor(1.0), bits))


def test_fixed_clamps_to_code_range() -> None:
    out = QUANTIZERS["fixed"](torch.tensor([100.0, -100.0, 0.26]), torch.tensor(0.5), 3)
    torch.testing.assert_close(out, torch.tensor([1.5, -2.0, 0.5]))


@pytest.mark.parametrize("method", ["max", "mse"])
def test_channel_scales_per_output_channel(method: str) -> None:
    w = torch.linspace(-1, 1, 16)[None, :] ** 3 * torch.arange(1, 9).float()[:, None]
    s = channel_scales(w, 4, QUANTIZERS["fixed"], method)
    assert s.shape == (8, 1)
    assert bool((s[1:] > s[:-1]).all())  # scales follow the channel magnitudes
    if method == "max":
        torch.testing.assert_close(s[:, 0], w.abs().amax(1) / 7)


@pytest.mark.parametrize("name", ["fixed", "pot"])
@pytest.mark.parametrize("block", [1 << 23, 100])
def test_mse_channel_scales_minimise_each_channels_error(
    name: str, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vectorised clip search (in blocks of rows) picks, for every channel, the candidate
    with the least squared error, exactly as one candidate at a time would."""
    monkeypatch.setattr(quantizers, "_MSE_BLOCK_ELEMENTS", block)
    q = QUANTIZERS[name]
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(1)) ** 3
    for bits in (2, 4, 8):
        s = channel_scales(w, bits, q, "mse")[:, 0]
        amax = w.abs().amax(1)
        cands = amax[None, :] * quantizers._CLIP_GRID[:, None] / q.max_level(bits)
        errs = torch.stack([((q(w, c[:, None], bits) - w) ** 2).sum(1) for c in cands])
        chosen = ((q(w, s[:, None], bits) - w) ** 2).sum(1)
        torch.testing.assert_close(chosen, errs.min(0).values)


def test_mse_scale_not_worse_than_max() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20000, generator=gen) ** 3  # heavy tails
    q = QUANTIZERS["fixed"]
    amax = float(x.abs().max())
    errs = {}
    for m in ("max", "percentile", "mse"):
        s = torch.tensor(tensor_scale(x, amax, 4, q, m))
        errs[m] = float(((q(x, s, 4) - x) ** 2).mean())
    assert errs["mse"] <= errs["max"]
    assert errs["mse"] < 0.5 * errs["max"]


def test_unknown_quantizer_is_user_error() -> None:
    with pytest.raises(UserError, match="allowed fixed"):
        get_quantizer("ternary")
