"""PyRTL engines: bit-exact GEMMs against numpy, cycle counts against hwmodel.cycles."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyrtl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.cost import array_register_bits, fixed_multiplier_dsp, load_coefficients
from hwmodel.cycles import gemm_compute_cycles
from hwmodel.rtl.engines import (
    EngineConfig,
    build_engine,
    model_lanes_per_dsp,
    packed_pair_products,
    pot_product,
)
from hwmodel.rtl.harness import (
    GemmTiling,
    decode_pot,
    pot_columns,
    reference_gemm,
    simulate_gemm,
)


@pytest.fixture(autouse=True)
def fresh_block() -> Iterator[None]:
    pyrtl.reset_working_block()
    yield
    pyrtl.reset_working_block()


def _operands(
    rng: np.random.Generator,
    m: int,
    n: int,
    k: int,
    cfg: EngineConfig,
    tn: int,
    ratio: float,
    extreme: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ab, wb, pb = cfg.act_bits, cfg.weight_bits, cfg.pot_weight_bits
    if extreme:  # most negative values everywhere: the worst case for sign handling
        a = np.full((m, k), -(1 << (ab - 1)), dtype=np.int64)
        wf = np.full((k, n), -(1 << (wb - 1)), dtype=np.int64)
        wp = np.full((k, n), (1 << pb) - 1, dtype=np.int64)  # −2^(max shift)
    else:
        a = rng.integers(-(1 << (ab - 1)), 1 << (ab - 1), size=(m, k))
        wf = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(k, n))
        wp = rng.integers(0, 1 << pb, size=(k, n))
    mask = pot_columns(n, tn, ratio)
    return a, np.where(mask[None, :], wp, wf), mask


def _check(
    m: int,
    n: int,
    k: int,
    cfg: EngineConfig,
    tiling: GemmTiling,
    ratio: float,
    seed: int = 0,
    extreme: bool = False,
) -> None:
    rng = np.random.default_rng(seed)
    a, w, mask = _operands(rng, m, n, k, cfg, tiling.tn, ratio, extreme)
    run = simulate_gemm(a, w, cfg, tiling, ratio)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, cfg))
    expected = gemm_compute_cycles(
        m, n, k, cfg.rows, cfg.cols_fixed, cfg.cols_pot, ratio, tiling.tm, tiling.tn, tiling.tk
    )
    assert run.cycles == expected


def test_one_fold_takes_k_plus_r_plus_c_minus_2() -> None:
    cfg = EngineConfig(3, 4, 0, 8, 4, 8, 24, 2)
    a = np.arange(3 * 5).reshape(3, 5) - 7
    w = np.arange(5 * 4).reshape(5, 4) - 9
    run = simulate_gemm(a, w, cfg, GemmTiling(3, 4, 5), 0.0)
    assert run.cycles == 5 + 3 + 4 - 2
    assert run.folds == 1
    np.testing.assert_array_equal(run.outputs, a @ w)


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("extreme", [False, True])
def test_fixed_array_bit_exact(lanes: int, extreme: bool) -> None:
    cfg = EngineConfig(4, 5, 0, 8, 4, 8, 20, lanes)
    _check(9, 11, 13, cfg, GemmTiling(6, 7, 5), 0.0, extreme=extreme)


@pytest.mark.parametrize("extreme", [False, True])
def test_pot_array_bit_exact(extreme: bool) -> None:
    cfg = EngineConfig(3, 0, 4, 8, 5, 6, 22, 1)
    _check(7, 9, 10, cfg, GemmTiling(4, 9, 4), 1.0, extreme=extreme)


@pytest.mark.parametrize("extreme", [False, True])
def test_mixed_engine_bit_exact(extreme: bool) -> None:
    cfg = EngineConfig(3, 3, 2, 6, 4, 7, 24, 2)
    _check(8, 10, 9, cfg, GemmTiling(5, 10, 4), 0.4, extreme=extreme)


def test_accumulator_wraps_like_twos_complement() -> None:
    # 10-bit accumulator, K = 16 products of −128·−128 overflow it many times
    cfg = EngineConfig(2, 2, 2, 8, 4, 8, 10, 2)
    _check(3, 4, 16, cfg, GemmTiling(3, 4, 5), 0.5, extreme=True)


def test_packed_pair_exhaustive_4bit() -> None:
    a = pyrtl.Input(4, "a")
    hi_w = pyrtl.Input(4, "hi")
    lo_w = pyrtl.Input(4, "lo")
    hi, lo = packed_pair_products(a, hi_w, lo_w, 12)
    o_hi = pyrtl.Output(12, "o_hi")
    o_lo = pyrtl.Output(12, "o_lo")
    o_hi <<= hi
    o_lo <<= lo
    sim = pyrtl.FastSimulation()
    vals = range(-8, 8)
    for x in vals:
        for y in vals:
            for z in vals:
                sim.step({"a": x & 15, "hi": y & 15, "lo": z & 15})
                got_hi = pyrtl.val_to_signed_integer(sim.inspect("o_hi"), 12)
                got_lo = pyrtl.val_to_signed_integer(sim.inspect("o_lo"), 12)
                assert (got_hi, got_lo) == (x * y, x * z)


def test_pot_product_all_codes() -> None:
    bits = 4
    a = pyrtl.Input(5, "a")
    code = pyrtl.Input(bits, "code")
    out = pyrtl.Output(16, "p")
    out <<= pot_product(a, code, 16)
    sim = pyrtl.FastSimulation()
    for x in range(-16, 16):
        for c in range(1 << bits):
            sim.step({"a": x & 31, "code": c})
            expect = x * int(decode_pot(np.array([c]), bits)[0])
            assert pyrtl.val_to_signed_integer(sim.inspect("p"), 16) == expect


def test_decode_pot_levels() -> None:
    # 4-bit codes: m = 0 is zero, m = 1..7 are 2^0 .. 2^6 (= 2^(e − e_min), e_min = −6)
    codes = np.array([0, 1, 7, 8, 9, 15])
    np.testing.assert_array_equal(decode_pot(codes, 4), [0, 1, 64, 0, -1, -64])


def _register_bits() -> int:
    return sum(len(r) for r in pyrtl.working_block().wirevector_subset(pyrtl.Register))


def _multipliers() -> int:
    return sum(1 for net in pyrtl.working_block().logic if net.op == "*")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 5),
    cf=st.integers(0, 5),
    cp=st.integers(0, 4),
    wb=st.integers(2, 8),
    pb=st.integers(2, 6),
    ab=st.integers(2, 8),
    extra=st.integers(1, 12),
)
def test_structural_ff_and_multipliers_match_cost_model(
    rows: int, cf: int, cp: int, wb: int, pb: int, ab: int, extra: int
) -> None:
    if cf + cp == 0:
        cf = 1
    acc = ab + extra
    coef = load_coefficients()
    lanes = model_lanes_per_dsp(wb, ab)
    cfg = EngineConfig(rows, cf, cp, wb, pb, ab, acc, lanes)
    pyrtl.reset_working_block()
    build_engine(cfg)
    expect_ff = array_register_bits(rows, cf, wb, ab, acc, lanes) + array_register_bits(
        rows, cp, pb, ab, acc, 1
    )
    assert _register_bits() == expect_ff
    assert _multipliers() == fixed_multiplier_dsp(rows, cf, wb, ab, "DSP48E2", coef)


def test_model_packing_is_two_lanes_for_int8() -> None:
    assert model_lanes_per_dsp(8, 8) == 2
    assert model_lanes_per_dsp(4, 4) == 2
    assert model_lanes_per_dsp(12, 8) == 1


def test_harness_rejects_bad_inputs() -> None:
    cfg = EngineConfig(2, 2, 0, 8, 4, 8, 24, 1)
    with pytest.raises(ValueError, match="inner dimensions"):
        simulate_gemm(np.zeros((2, 3)), np.zeros((4, 2)), cfg, GemmTiling(2, 2, 2), 0.0)
    with pytest.raises(ValueError, match="no such columns"):
        simulate_gemm(np.zeros((2, 3)), np.zeros((3, 4)), cfg, GemmTiling(2, 4, 3), 0.5)
    with pytest.raises(ValueError, match="rows"):
        simulate_gemm(
            np.zeros((2, 3)), np.zeros((3, 2)), EngineConfig(1, 2, 0, 8, 4, 8, 24), GemmTiling(2, 2, 3), 0.0
        )


@st.composite
def gemm_cases(draw: st.DrawFn) -> tuple[int, int, int, EngineConfig, GemmTiling, float, int]:
    ratio = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
    rows = draw(st.integers(2, 4))
    cf = 0 if ratio == 1.0 else draw(st.integers(1, 4))
    cp = 0 if ratio == 0.0 else draw(st.integers(1, 4))
    wb = draw(st.integers(2, 8))
    ab = draw(st.integers(2, 8))
    pb = draw(st.integers(2, 5))
    acc = ab + draw(st.integers(4, 16))
    lanes = draw(st.sampled_from([1, 2]))
    m, n, k = draw(st.integers(1, 10)), draw(st.integers(1, 10)), draw(st.integers(1, 12))
    tiling = GemmTiling(draw(st.integers(1, m)), draw(st.integers(1, n)), draw(st.integers(1, k)))
    seed = draw(st.integers(0, 2**31))
    return m, n, k, EngineConfig(rows, cf, cp, wb, pb, ab, acc, lanes), tiling, ratio, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_cases())
def test_simulated_cycles_equal_analytic_cycles(
    case: tuple[int, int, int, EngineConfig, GemmTiling, float, int],
) -> None:
    m, n, k, cfg, tiling, ratio, seed = case
    _check(m, n, k, cfg, tiling, ratio, seed)


def test_eight_bit_pot_codes_shift_past_the_accumulator() -> None:
    # 8-bit PoT codes shift by up to 126: products beyond acc_bits wrap to 0 in RTL and reference
    cfg = EngineConfig(2, 0, 3, 8, 8, 8, 24, 1)
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, size=(3, 6))
    w = rng.integers(0, 256, size=(6, 3))
    w[0, :] = [1, 25, 255]  # 2^0, 2^23 (top acc bit), −2^126
    mask = np.ones(3, dtype=bool)
    run = simulate_gemm(a, w, cfg, GemmTiling(3, 3, 4), 1.0)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, cfg))
    with pytest.raises(ValueError, match="7-bit"):
        decode_pot(w, 8)
