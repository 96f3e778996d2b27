"""Contract tests of the integer non-linear kernels (every registry entry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codesign.quant import INT_OPS, IntSpec
from hwmodel.arch.intops import (
    KERNELS,
    LN_GUARD,
    VARIANTS,
    frac_bits_for,
    int_exp,
    isqrt,
    kernel,
    shift_exp,
    shift_layernorm_stats,
)

OPS = sorted(INT_OPS)


def _codes(rng: np.random.Generator, shape: tuple[int, ...], amax: float, spec: IntSpec) -> np.ndarray:
    x = rng.normal(0.0, amax / 3, shape).clip(-amax, amax)
    return np.round(x * 2.0**spec.in_frac).astype(np.int64)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("amax", [4.0, 30.0])
def test_close_to_float_operator(name: str, amax: float) -> None:
    op = INT_OPS[name]
    spec = op.spec(16, frac_bits_for(amax, 16), 16)
    q = _codes(np.random.default_rng(1), (64, 97), amax, spec)
    y = op(q, spec) * 2.0**-spec.out_frac
    ref = op.reference(q * 2.0**-spec.in_frac)
    assert np.abs(y - ref).max() <= op.max_abs_error


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("in_bits,out_bits", [(8, 8), (12, 16), (16, 10)])
def test_output_range_dtype_and_purity(name: str, in_bits: int, out_bits: int) -> None:
    op = INT_OPS[name]
    spec = op.spec(in_bits, in_bits - 4, out_bits)
    rng = np.random.default_rng(2)
    hi = (1 << (in_bits - 1)) - 1
    q = rng.integers(-hi - 1, hi + 1, (5, 7, 33))
    q_before = q.copy()
    y = op(q, spec)
    assert y.dtype == np.int64 and y.shape == q.shape
    assert np.array_equal(q, q_before)  # inputs untouched
    assert np.array_equal(y, op(q, spec))  # deterministic
    lo, top = (
        (-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1) if op.signed_out else (0, (1 << out_bits) - 1)
    )
    assert lo <= y.min() and y.max() <= top
    # vectorised over leading axes: the same as row by row (or element by element)
    rows = np.stack([op(row, spec) for row in q.reshape(-1, q.shape[-1])]).reshape(q.shape)
    assert np.array_equal(rows, y)
    # torch integer tensors are accepted too
    assert np.array_equal(op(torch.from_numpy(q).numpy(), spec), y)


@pytest.mark.parametrize("name", OPS)
def test_rejects_out_of_range_and_float_codes(name: str) -> None:
    op = INT_OPS[name]
    spec = op.spec(8, 4, 8)
    with pytest.raises(ValueError, match="range"):
        op(np.array([[128, 0]]), spec)
    with pytest.raises(TypeError):
        op(np.array([[1.0, 0.0]]), spec)


def test_softmax_edges() -> None:
    op = INT_OPS["softmax"]
    spec = op.spec(16, 10, 8)
    # all-equal row: uniform probabilities
    y = op(np.full((1, 4), 123, dtype=np.int64), spec)
    assert np.all(y == 64)
    # one huge logit, the rest very negative: all mass on one element, saturated at 2^b − 1
    y = op(np.array([[32767, -32768, -32768]]), spec)
    assert y.tolist() == [[255, 0, 0]]
    # rows sum to about one
    q = np.random.default_rng(3).integers(-4000, 4000, (100, 50))
    assert np.abs(op(q, spec).sum(-1) - 256).max() <= 50 * 1 + 2


def test_exp_is_exact_at_integer_powers_of_two() -> None:
    # d = −ln 2·k has u = k·2^F up to the L2E rounding; at d = 0 the value is exactly 1
    assert int_exp(np.array([0]), 10)[0] == 1 << 15
    assert np.all(np.diff(int_exp(-np.arange(0, 5000), 10)) <= 0)  # monotone


def test_layernorm_zero_variance_and_symmetry() -> None:
    op = INT_OPS["layernorm"]
    spec = op.spec(16, 10, 16)
    assert np.all(op(np.full((2, 96), -77, dtype=np.int64), spec) == 0)
    q = np.random.default_rng(4).integers(-3000, 3000, (10, 96))
    # shift invariance: adding a constant to a row does not change it
    assert np.array_equal(op(q, spec), op(q + 17, spec))


def test_gelu_large_inputs_pass_through() -> None:
    op = INT_OPS["gelu"]
    spec = op.spec(16, 8, 16)
    q = np.array([0, 32767, -32768, 1000])
    y = op(q, spec)
    assert y[0] == 0 and y[1] == 32767 and y[2] == 0
    assert abs(y[3] - 1000) <= 1


def test_isqrt_exact() -> None:
    v = np.concatenate([np.arange(0, 2000), np.random.default_rng(5).integers(0, 1 << 60, 2000)])
    s = isqrt(v)
    assert np.all(s * s <= v) and np.all((s + 1) * (s + 1) > v)


def test_frac_bits_cover_range() -> None:
    for amax in (0.3, 1.0, 7.9, 8.0, 100.0):
        f = frac_bits_for(amax, 16)
        assert amax * 2**f <= 32767 < amax * 2 ** (f + 1)


# ----------------------------------------------------------------------------- kernel variants

VARIANT_OPS = sorted((kind, variant) for kind in KERNELS for variant in KERNELS[kind])


def test_poly_variants_are_today_s_kernels() -> None:
    assert set(KERNELS) == set(INT_OPS) and VARIANTS == ("poly", "shift")
    for kind, op in INT_OPS.items():
        assert KERNELS[kind]["poly"] is op and kernel(kind) is op
        assert KERNELS[kind]["shift"].name == kind and KERNELS[kind]["shift"].variant == "shift"
    with pytest.raises(ValueError, match="variant 'cordic'"):
        kernel("gelu", "cordic")
    with pytest.raises(ValueError, match="op 'relu'"):
        kernel("relu")


@pytest.mark.parametrize(("name", "variant"), VARIANT_OPS)
@pytest.mark.parametrize("amax", [1.0, 4.0, 30.0])
def test_variant_close_to_float_operator(name: str, variant: str, amax: float) -> None:
    op = KERNELS[name][variant]
    spec = op.spec(16, frac_bits_for(amax, 16), 16)
    for seed in range(3):
        q = _codes(np.random.default_rng(seed), (64, 97), amax, spec)
        y = op(q, spec) * 2.0**-spec.out_frac
        ref = op.reference(q * 2.0**-spec.in_frac)
        assert np.abs(y - ref).max() <= op.max_abs_error


@pytest.mark.parametrize(("name", "variant"), VARIANT_OPS)
@pytest.mark.parametrize("in_bits,out_bits", [(8, 8), (12, 16), (16, 10)])
def test_variant_range_dtype_and_purity(name: str, variant: str, in_bits: int, out_bits: int) -> None:
    op = KERNELS[name][variant]
    spec = op.spec(in_bits, in_bits - 4, out_bits)
    hi = (1 << (in_bits - 1)) - 1
    q = np.random.default_rng(2).integers(-hi - 1, hi + 1, (5, 7, 33))
    q_before = q.copy()
    y = op(q, spec)
    assert y.dtype == np.int64 and y.shape == q.shape
    assert np.array_equal(q, q_before) and np.array_equal(y, op(q, spec))
    lo, top = (
        (-(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1) if op.signed_out else (0, (1 << out_bits) - 1)
    )
    assert lo <= y.min() and y.max() <= top
    rows = np.stack([op(row, spec) for row in q.reshape(-1, q.shape[-1])]).reshape(q.shape)
    assert np.array_equal(rows, y)
    with pytest.raises(ValueError, match="range"):
        op(np.array([[hi + 1, 0]]), spec)
    with pytest.raises(TypeError):
        op(np.array([[1.0, 0.0]]), spec)


def test_shift_exp_is_shift_and_add_and_monotone() -> None:
    m = np.arange(0, 1 << 17)
    e = shift_exp(m, 10)
    assert e[0] == 1 << 15 and np.all(np.diff(e) <= 0) and e[-1] == 0
    # 2^−r ≈ 1 − r/2 is exact at r = 0 and r = 1 and never below 2^−r (at most 6.2 % above);
    # log2 e ≈ 1.4375 makes it e^{−x·1.4375/log2 e}
    ref = 2.0 ** (15 - m * 2.0**-10 * 1.4375)
    assert np.all(e <= ref * 1.062 + 1) and np.all(e >= ref * 0.999 - 1)


def test_shift_softmax_edges() -> None:
    op = kernel("softmax", "shift")
    spec = op.spec(16, 10, 8)
    assert np.all(op(np.full((1, 4), 123, dtype=np.int64), spec) == 64)
    assert op(np.array([[32767, -32768, -32768]]), spec).tolist() == [[255, 0, 0]]
    # the division is exact per element: a row sums to 2^8 less at most one code per element
    q = np.random.default_rng(3).integers(-4000, 4000, (100, 50))
    s = op(q, spec).sum(-1)
    assert np.all(s <= 256) and np.all(s >= 256 - 50)


def test_shift_layernorm_zero_variance_symmetry_and_statistics() -> None:
    op = kernel("layernorm", "shift")
    spec = op.spec(16, 10, 16)
    assert np.all(op(np.full((2, 96), -77, dtype=np.int64), spec) == 0)
    q = np.random.default_rng(4).integers(-3000, 3000, (10, 96))
    assert np.array_equal(op(q, spec), op(q + 17, spec))
    # the statistics are the exact mean and N·σ floored to LN_GUARD fraction bits
    mean, sigma = shift_layernorm_stats(q, spec)
    u = q + (1 << 15)
    assert np.all(np.abs(mean[:, 0] * 2.0**-LN_GUARD - u.mean(-1)) < 2.0**-LN_GUARD)
    assert np.all(np.abs(sigma[:, 0] * 2.0**-LN_GUARD - u.std(-1)) < 2.0 ** (1 - LN_GUARD))


def test_shift_gelu_ends_and_formats() -> None:
    op = kernel("gelu", "shift")
    spec = op.spec(16, 8, 16)
    y = op(np.array([0, 32767, -32768, 1000, -1000]), spec)
    assert y[0] == 0 and y[1] == 32767 and y[2] == 0
    assert abs(y[3] - 1000) <= 3 and -3 <= y[4] <= 0
    with pytest.raises(ValueError, match="out_frac"):
        op(np.array([1]), IntSpec(16, 16, 16, 0))
