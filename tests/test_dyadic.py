"""The dyadic rescale M·2^−s (codesign.quant._dyadic): multiplier bounds, exact powers of two,
rounding half up, saturation, offsets, the int64 guard."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from codesign.quant import Dyadic, dyadic_pair
from codesign.quant._dyadic import INPUT_BITS, MAX_SHIFT, MULTIPLIER_BITS

SCALES = st.floats(min_value=2.0**-40, max_value=2.0**30, allow_subnormal=False)
#: scales whose shift stays ≤ 62, so M is normalised (2^30 ≤ |M| < 2^31)
NORMAL = st.floats(min_value=2.0**-32, max_value=2.0**30)
INPUTS = st.integers(min_value=-(2**INPUT_BITS) + 1, max_value=2**INPUT_BITS - 1)


def reference(x: int, mult: int, shift: int, lo: int, hi: int, offset: int = 0) -> int:
    """⌊(x·M + c + 2^(s−1)) / 2^s⌋ clamped, in Python's unbounded integers."""
    num = x * mult + offset + (1 << (shift - 1) if shift else 0)
    return min(max(num >> shift, lo), hi)


@given(NORMAL, st.booleans())
@example(2.0**-32, True)
@example(2.0**30 * (1 - 2.0**-40), False)  # m rounds up to 1: M = 2^30, s − 1
def test_multiplier_is_normalised_and_close(r: float, negative: bool) -> None:
    scale = -r if negative else r
    mult, shift = dyadic_pair(scale)
    assert 0 <= shift <= MAX_SHIFT
    assert 2**30 <= abs(mult) < 2**MULTIPLIER_BITS
    assert (mult < 0) == negative
    assert abs(mult * 2.0**-shift - scale) <= 2.0 ** -(shift + 1)
    assert abs(mult * 2.0**-shift - scale) <= abs(scale) * 2.0**-30


@pytest.mark.parametrize("k", range(-31, 31))
@pytest.mark.parametrize("sign", [1, -1])
def test_powers_of_two_are_exact(k: int, sign: int) -> None:
    mult, shift = dyadic_pair(sign * 2.0**k)
    assert mult == sign * 2**30
    assert mult * 2.0**-shift == sign * 2.0**k
    x = torch.arange(-1000, 1001, dtype=torch.int64)
    y = Dyadic.from_scales(sign * 2.0**k).apply(x, -(2**40), 2**40)
    assert y.tolist() == [reference(v, mult, shift, -(2**40), 2**40) for v in x.tolist()]


def test_rounding_is_half_up() -> None:
    half = Dyadic.from_scales(0.5)
    x = torch.tensor([5, -5, 3, -3, 1, -1, 0, 4, -4], dtype=torch.int64)
    assert half.apply(x, -100, 100).tolist() == [3, -2, 2, -1, 1, 0, 0, 2, -2]
    quarter = Dyadic.from_scales(0.25)  # .5 at 2 and −2, .25 and .75 elsewhere
    x = torch.tensor([2, -2, 1, -1, 3, -3], dtype=torch.int64)
    assert quarter.apply(x, -100, 100).tolist() == [1, 0, 0, 0, 1, -1]


@given(INPUTS, SCALES, st.booleans())
def test_apply_is_the_integer_formula(x: int, r: float, negative: bool) -> None:
    scale = -r if negative else r
    d = Dyadic.from_scales(scale)
    mult, shift = int(d.multiplier), int(d.shift)
    lo, hi = -(2**62), 2**62
    y = int(d.apply(torch.tensor([x], dtype=torch.int64), lo, hi)[0])
    assert y == reference(x, mult, shift, lo, hi)
    if abs(x * scale) < 2**61:  # unsaturated: within ½ of the exact product plus M's error
        assert abs(y - x * scale) <= 0.5 + abs(x) * abs(scale) * 2.0**-30 + 1e-9


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_saturates_both_ends(bits: int) -> None:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = torch.tensor([-(2**30), -(2**bits), lo - 1, lo, 0, hi, hi + 1, 2**bits, 2**30], dtype=torch.int64)
    y = Dyadic.from_scales(1.0).apply(x, lo, hi)
    assert y.tolist() == [lo, lo, lo, lo, 0, hi, hi, hi, hi]
    neg = Dyadic.from_scales(-1.0).apply(x, lo, hi)
    assert neg.tolist() == [min(max(-v, lo), hi) for v in x.tolist()]


@given(INPUTS, SCALES, st.integers(min_value=-(2**40), max_value=2**40))
def test_offset_is_added_before_the_shift(x: int, r: float, c: int) -> None:
    d = Dyadic.from_scales(r)
    y = d.apply(torch.tensor([x], dtype=torch.int64), -(2**62), 2**62, torch.tensor([c], dtype=torch.int64))
    assert int(y[0]) == reference(x, int(d.multiplier), int(d.shift), -(2**62), 2**62, c)


def test_per_channel_broadcasts_over_the_last_axis() -> None:
    scales = torch.tensor([0.5, 2.0, 0.1, -0.3], dtype=torch.float64)
    d = Dyadic.from_scales(scales)
    x = torch.arange(-12, 12, dtype=torch.int64).reshape(3, 2, 4)
    y = d.apply(x, -1000, 1000)
    for c in range(4):
        m, s = dyadic_pair(float(scales[c]))
        assert y[..., c].flatten().tolist() == [
            reference(v, m, s, -1000, 1000) for v in x[..., c].flatten().tolist()
        ]
    assert torch.allclose(d.value(), scales, rtol=2**-30)


def test_offset_for_rounds_values_into_product_units() -> None:
    d = Dyadic.from_scales(torch.tensor([0.5, 0.1], dtype=torch.float64))
    c = d.offset_for(torch.tensor([1.25, -3.0], dtype=torch.float64))
    assert c.tolist() == [round(1.25 * 2 ** int(d.shift[0])), round(-3.0 * 2 ** int(d.shift[1]))]
    with pytest.raises(ValueError, match="2\\^61"):
        Dyadic.from_scales(2.0**-60).offset_for(torch.tensor([1e3]))


def test_edges_of_the_scale_range() -> None:
    assert dyadic_pair(0.0) == (0, 0)
    tiny = 2.0**-70  # shift capped at 62, a smaller multiplier
    assert dyadic_pair(tiny) == (round(tiny * 2**62), MAX_SHIFT) == (0, MAX_SHIFT)
    assert dyadic_pair(3 * 2.0**-62) == (3, MAX_SHIFT)
    for bad in (2.0**31, 2.0**31 - 0.25, -(2.0**31), math.inf, math.nan):  # 2^31 − ¼ rounds to 2^31
        with pytest.raises(ValueError):
            dyadic_pair(bad)


def test_refuses_what_would_overflow_or_is_not_integer() -> None:
    d = Dyadic.from_scales(0.5)
    with pytest.raises(ValueError, match="2\\^31"):
        d.apply(torch.tensor([2**INPUT_BITS], dtype=torch.int64), -10, 10)
    with pytest.raises(ValueError, match="2\\^31"):
        d.apply(torch.tensor([-(2**INPUT_BITS)], dtype=torch.int64), -10, 10)
    with pytest.raises(TypeError, match="int64"):
        d.apply(torch.tensor([1.0]), -10, 10)
    assert d.apply(torch.zeros(0, dtype=torch.int64), -10, 10).numel() == 0
