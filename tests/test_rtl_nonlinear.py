"""PyRTL non-linear units vs the integer kernels (bit-exact) and the cycle formulas (exact)."""

from __future__ import annotations

import numpy as np
import pytest

from hwmodel.arch.intops import INT_OPS, IntSpec, kernel
from hwmodel.arch.nonlinear import (
    DIV_BITS_PER_CYCLE,
    GELU_LATENCY,
    design_spec,
    divider_latency,
    gelu_latency,
    isqrt_steps,
    mean_steps,
    op_cycles,
    row_cycles,
    stream_cycles,
    variance_steps,
)
from hwmodel.rtl.nonlinear import build_unit, simulate_unit

KINDS = sorted(INT_OPS)
LOG2_ROWS = 3


def _edge_rows(spec: IntSpec, length: int) -> list[np.ndarray]:
    lo, hi = -(1 << (spec.in_bits - 1)), (1 << (spec.in_bits - 1)) - 1
    return [
        np.full(length, 7),  # all equal (zero variance)
        np.full(length, lo),
        np.full(length, hi),
        np.array([hi] + [lo] * (length - 1)),  # one large logit, the rest very negative
        np.array([lo, hi] * (length // 2)),
        np.array([0]),  # a row of one
        np.arange(length) - length // 2,
    ]


def _check(kind: str, spec: IntSpec, rows: list[np.ndarray], lanes: int, variant: str = "poly") -> None:
    run = simulate_unit(kind, spec, rows, lanes, LOG2_ROWS, variant)
    op = kernel(kind, variant)
    for got, row in zip(run.outputs, rows, strict=True):
        assert np.array_equal(got, op(row, spec)), (kind, row)
    assert run.cycles == stream_cycles(kind, spec, [len(r) for r in rows], lanes, LOG2_ROWS, variant)
    if kind != "gelu":  # each lane takes its next row exactly one row time after the last
        per_row = [row_cycles(kind, spec, len(r), LOG2_ROWS, variant) for r in rows]
        for lane in range(lanes):
            mine = list(range(lane, len(rows), lanes))
            starts = [run.starts[i] for i in mine]
            assert starts == list(np.cumsum([0] + [per_row[i] for i in mine[:-1]]))


@pytest.mark.parametrize("kind", KINDS)
def test_thousand_random_vectors_and_edges_bit_and_cycle_exact(kind: str) -> None:
    spec = INT_OPS[kind].spec(16, 10, 16)
    rng = np.random.default_rng(7)
    rows = [rng.integers(-(1 << 15), 1 << 15, 1 << LOG2_ROWS) for _ in range(1000)]
    rows[::7] = [rng.integers(-3000, 3000, 1 << LOG2_ROWS) for _ in rows[::7]]  # typical ranges
    _check(kind, spec, rows + _edge_rows(spec, 1 << LOG2_ROWS), lanes=4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("in_bits", "in_frac", "out_bits"), [(8, 4, 8), (12, 9, 10)])
def test_other_widths_and_row_lengths(kind: str, in_bits: int, in_frac: int, out_bits: int) -> None:
    spec = INT_OPS[kind].spec(in_bits, in_frac, out_bits)
    rng = np.random.default_rng(in_bits)
    hi = 1 << (in_bits - 1)
    rows = [rng.integers(-hi, hi, rng.integers(1, (1 << LOG2_ROWS) + 1)) for _ in range(60)]
    _check(kind, spec, rows + _edge_rows(spec, 6), lanes=3)


def test_op_cycles_of_the_design_units() -> None:
    # an op's rows spread over the lanes; the unit's formula is the lane's times the rounds
    assert op_cycles("gelu", 17, 384, 8, 0) == -(-17 * 384 // 8) + GELU_LATENCY
    for kind in ("softmax", "layernorm"):
        one = op_cycles(kind, 1, 197, 1, 8)
        assert op_cycles(kind, 17, 197, 4, 8) == 5 * one


# ----------------------------------------------------------------------------- shift variants


@pytest.mark.parametrize("kind", KINDS)
def test_shift_lanes_random_vectors_and_edges_bit_and_cycle_exact(kind: str) -> None:
    spec = INT_OPS[kind].spec(16, 10, 16)
    rng = np.random.default_rng(8)
    rows = [rng.integers(-(1 << 15), 1 << 15, 1 << LOG2_ROWS) for _ in range(400)]
    rows[::5] = [rng.integers(-3000, 3000, 1 << LOG2_ROWS) for _ in rows[::5]]
    _check(kind, spec, rows + _edge_rows(spec, 1 << LOG2_ROWS), lanes=3, variant="shift")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("in_bits", "in_frac", "out_bits"), [(8, 4, 8), (12, 9, 10), (16, 3, 12)])
def test_shift_lanes_other_widths_and_row_lengths(
    kind: str, in_bits: int, in_frac: int, out_bits: int
) -> None:
    spec = INT_OPS[kind].spec(in_bits, in_frac, out_bits)
    rng = np.random.default_rng(in_bits + 1)
    hi = 1 << (in_bits - 1)
    rows = [rng.integers(-hi, hi, rng.integers(1, (1 << LOG2_ROWS) + 1)) for _ in range(40)]
    _check(kind, spec, rows + _edge_rows(spec, 6), lanes=2, variant="shift")


def test_shift_cycle_formulas() -> None:
    # the divider resolves DIV_BITS_PER_CYCLE quotient bits a cycle; the formulas in words
    assert [divider_latency(b) for b in (1, 2, 3, 16, 17)] == [
        -(-b // DIV_BITS_PER_CYCLE) for b in (1, 2, 3, 16, 17)
    ]
    spec = design_spec("softmax")
    assert row_cycles("softmax", spec, 197, 8, "shift") == 3 * 197 + divider_latency(spec.out_frac + 1) + 5
    spec = design_spec("layernorm")
    steps = variance_steps(spec, 10) + isqrt_steps(spec, 10) + mean_steps(spec)
    assert row_cycles("layernorm", spec, 768, 10, "shift") == 2 * 768 + steps + divider_latency(16) + 5
    spec = design_spec("gelu")
    assert gelu_latency(spec, "shift") == divider_latency(16) + 4 and gelu_latency(spec) == GELU_LATENCY
    assert op_cycles("gelu", 17, 384, 8, 0, "shift") == -(-17 * 384 // 8) + gelu_latency(spec, "shift")
    for kind in ("softmax", "layernorm"):
        one = op_cycles(kind, 1, 197, 1, 8, "shift")
        assert op_cycles(kind, 17, 197, 4, 8, "shift") == 5 * one
        assert op_cycles(kind, 1, 197, 1, 8) == op_cycles(kind, 1, 197, 1, 8, "poly")
    # the shift softmax skips the row reciprocal: shorter rows than today's
    assert row_cycles("softmax", design_spec("softmax"), 197, 8, "shift") < row_cycles(
        "softmax", design_spec("softmax"), 197, 8
    )
    with pytest.raises(ValueError, match="variant 'fast'"):
        row_cycles("softmax", design_spec("softmax"), 197, 8, "fast")
    with pytest.raises(ValueError, match="variant 'fast'"):
        build_unit("gelu", design_spec("gelu"), 1, 0, "fast")
