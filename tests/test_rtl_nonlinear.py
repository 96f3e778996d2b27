"""PyRTL non-linear units vs the integer kernels (bit-exact) and the cycle formulas (exact)."""

from __future__ import annotations

import numpy as np
import pytest

from hwmodel.arch.intops import INT_OPS, IntSpec
from hwmodel.arch.nonlinear import GELU_LATENCY, op_cycles, row_cycles, stream_cycles
from hwmodel.rtl.nonlinear import simulate_unit

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


def _check(kind: str, spec: IntSpec, rows: list[np.ndarray], lanes: int) -> None:
    run = simulate_unit(kind, spec, rows, lanes, LOG2_ROWS)
    op = INT_OPS[kind]
    for got, row in zip(run.outputs, rows, strict=True):
        assert np.array_equal(got, op(row, spec)), (kind, row)
    assert run.cycles == stream_cycles(kind, spec, [len(r) for r in rows], lanes, LOG2_ROWS)
    if kind != "gelu":  # each lane takes its next row exactly one row time after the last
        per_row = [row_cycles(kind, spec, len(r), LOG2_ROWS) for r in rows]
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
