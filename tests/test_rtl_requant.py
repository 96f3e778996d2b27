"""The requantization lanes (PyRTL) against the dyadic rescale they implement, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.quant import Dyadic
from hwmodel.arch.dyadic import INPUT_BITS, MAX_OFFSET, MAX_SHIFT, rescale
from hwmodel.rtl.requant import LATENCY, RESIDUAL_LATENCY, RequantSpec, simulate_requant

XS = st.integers(-(2**INPUT_BITS) + 1, 2**INPUT_BITS - 1)
MULTS = st.integers(-(2**31) + 1, 2**31 - 1)
SHIFTS = st.integers(0, MAX_SHIFT)
OFFSETS = st.integers(-MAX_OFFSET, MAX_OFFSET)


def reference(x: list[int], m: list[int], s: list[int], lo: int, hi: int, c: list[int] | None) -> np.ndarray:
    xs, ms, ss = (np.array(v, dtype=np.int64) for v in (x, m, s))
    return rescale(xs, ms, ss, lo, hi, None if c is None else np.array(c, dtype=np.int64))


@st.composite
def elements(draw: st.DrawFn, n_max: int = 12) -> tuple[list[int], list[int], list[int], list[int]]:
    n = draw(st.integers(1, n_max))
    return tuple(draw(st.lists(strat, min_size=n, max_size=n)) for strat in (XS, MULTS, SHIFTS, OFFSETS))  # type: ignore[return-value]


@settings(max_examples=25, deadline=None)
@given(elements(), st.integers(1, 3), st.booleans(), st.integers(2, 32))
def test_a_lane_is_the_dyadic_rescale(
    data: tuple[list[int], list[int], list[int], list[int]], lanes: int, with_offset: bool, out_bits: int
) -> None:
    x, m, s, c = data
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    spec = RequantSpec(lanes, out_bits=out_bits, offset=with_offset)
    run = simulate_requant(spec, x, m, s, lo, hi, offset=c if with_offset else None)
    assert run.outputs.tolist() == reference(x, m, s, lo, hi, c if with_offset else None).tolist()
    assert run.cycles == -(-len(x) // lanes) + LATENCY


@settings(max_examples=20, deadline=None)
@given(elements(), st.lists(st.integers(-(2**23), 2**23 - 1), min_size=12, max_size=12), MULTS, SHIFTS)
def test_a_residual_lane_adds_the_rescaled_stream(
    data: tuple[list[int], list[int], list[int], list[int]], r: list[int], skip_mult: int, skip_shift: int
) -> None:
    x, m, s, c = data
    r = r[: len(x)]
    lo, hi = -(2**23), 2**23 - 1
    run = simulate_requant(
        RequantSpec(2, out_bits=24, residual=True),
        x,
        m,
        s,
        lo,
        hi,
        offset=c,
        r=r,
        skip=(skip_mult, skip_shift),
    )
    stream = rescale(np.array(r, dtype=np.int64), np.int64(skip_mult), np.int64(skip_shift), lo, hi)
    want = np.clip(reference(x, m, s, lo, hi, c) + stream, lo, hi)
    assert run.outputs.tolist() == want.tolist()
    assert run.cycles == -(-len(x) // 2) + RESIDUAL_LATENCY


def test_the_lane_is_the_integer_models_rescale() -> None:
    """The torch :class:`Dyadic` of the integer model and the lane agree on a per-channel rescale."""
    gen = torch.Generator().manual_seed(0)
    scales = torch.rand(16, generator=gen, dtype=torch.float64) * 1e-3
    d = Dyadic.from_scales(scales)
    x = torch.randint(-(2**30), 2**30, (4, 16), generator=gen)
    offset = d.offset_for(torch.randn(16, generator=gen, dtype=torch.float64) * 3)
    want = d.apply(x, -128, 127, offset)
    flat = x.reshape(-1)
    ch = np.arange(flat.numel()) % 16
    run = simulate_requant(
        RequantSpec(4, out_bits=8),
        flat.tolist(),
        d.multiplier[ch].tolist(),
        d.shift[ch].tolist(),
        -128,
        127,
        offset=offset[ch].tolist(),
    )
    assert run.outputs.reshape(4, 16).tolist() == want.tolist()


@pytest.mark.parametrize(("shift", "x", "want"), [(1, 5, 3), (1, -5, -2), (0, 7, 7), (62, 2**30, 0)])
def test_rounding_is_half_up_at_the_ends(shift: int, x: int, want: int) -> None:
    run = simulate_requant(RequantSpec(1), [x], [1], [shift], -(2**31), 2**31 - 1)
    assert run.outputs.tolist() == [want]
