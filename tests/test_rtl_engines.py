"""PyRTL engines: bit-exact GEMMs against the integer reference, cycle counts against hwmodel.arch.cycles."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyrtl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.arch.cycles import gemm_compute_cycles
from hwmodel.arch.engine import DSP_SLICES, EngineConfig, decode_pot, lane_mode
from hwmodel.cost.engine import register_bits
from hwmodel.rtl.dsp import PrimitiveSlices
from hwmodel.rtl.engines import build_engine, pot_add, pot_decode, separate_lanes
from hwmodel.rtl.harness import GemmTiling, pot_columns, reference_gemm, simulate_gemm


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
    eng: EngineConfig,
    bits: tuple[int, int],
    tn: int,
    ratio: float,
    extreme: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wb, ab = bits
    pb = eng.pot_weight_bits
    if extreme:  # most negative values everywhere: the worst case for lanes and signs
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
    eng: EngineConfig,
    tiling: GemmTiling,
    ratio: float,
    bits: tuple[int, int] | None = None,
    seed: int = 0,
    extreme: bool = False,
) -> int:
    rng = np.random.default_rng(seed)
    layer = bits or (eng.weight_bits, eng.act_bits)
    a, w, mask = _operands(rng, m, n, k, eng, layer, tiling.tn, ratio, extreme)
    run = simulate_gemm(a, w, eng, tiling, ratio, layer_bits=layer)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, eng))
    expected = gemm_compute_cycles(m, n, k, eng, ratio, tiling.tm, tiling.tn, tiling.tk, layer)
    assert run.cycles == expected
    return run.cycles


def test_one_fold_takes_steps_plus_fill_and_drain() -> None:
    """One fold, unpacked, 3 rows × 2 columns: 5 tokens + R + L + C + 3 = 5 + 3 + 3 + 2 + 3."""
    eng = EngineConfig(3, 2, 0, 8, 4, 8, 24, packing=1)
    a = np.arange(5 * 3).reshape(5, 3) - 7
    w = np.arange(3 * 2).reshape(3, 2) - 3
    run = simulate_gemm(a, w, eng, GemmTiling(5, 2, 3), 0.0)
    assert run.cycles == 5 + 3 + 3 + 2 + 3
    assert run.folds == 1
    np.testing.assert_array_equal(run.outputs, a @ w)


def test_two_tokens_per_slice_halve_the_stream() -> None:
    """WP486 packing: 20 tokens stream in 10 cycles per fold (two per slice and cycle)."""
    unpacked = EngineConfig(4, 2, 0, 8, 4, 8, 24, packing=1)
    packed = EngineConfig(4, 2, 0, 8, 4, 8, 24, packing=2)
    slow = _check(20, 6, 8, unpacked, GemmTiling(20, 6, 8), 0.0)
    fast = _check(20, 6, 8, packed, GemmTiling(20, 6, 8), 0.0)
    assert packed.chain_rows == unpacked.chain_rows == 4  # 4 rows hold W8A8 sums in 18-bit lanes
    assert (slow, fast) == (5 * 20 + 20 + 13, 5 * 10 + 10 + 13)  # 6 folds of 20 and of 10 cycles


@pytest.mark.parametrize("dsp", sorted(DSP_SLICES))
@pytest.mark.parametrize("packing", [1, 2, 4])
@pytest.mark.parametrize("extreme", [False, True])
def test_fixed_array_bit_exact(dsp: str, packing: int, extreme: bool) -> None:
    eng = EngineConfig(5, 3, 0, 8, 4, 8, 26, packing, dsp)
    _check(9, 11, 13, eng, GemmTiling(6, 7, 8), 0.0, extreme=extreme)


@pytest.mark.parametrize("dsp", sorted(DSP_SLICES))
def test_four_int4_lanes_per_slice(dsp: str) -> None:
    """A packing-4 engine runs W4A4 in the 4-lane mode and W8A8 in the 2-lane one, both exact."""
    eng = EngineConfig(6, 2, 0, 8, 4, 8, 26, packing=4, dsp=dsp)
    assert [m.lanes for m in eng.modes] == [2, 4]
    assert eng.mode_for(4, 4).lanes == 4 and eng.mode_for(5, 4).lanes == 2
    quad = _check(7, 9, 13, eng, GemmTiling(7, 9, 13), 0.0, bits=(4, 4), extreme=True)
    pair = _check(7, 9, 13, eng, GemmTiling(7, 9, 13), 0.0, bits=(8, 8), extreme=True)
    assert quad < pair  # the 4-lane mode holds twice the channels per fold
    _check(7, 9, 13, eng, GemmTiling(4, 5, 6), 0.0, bits=(3, 2), seed=3)


def test_pure_int4_engine_has_only_the_four_lane_mode() -> None:
    eng = EngineConfig(4, 2, 0, 4, 4, 4, 16, packing=4)
    assert [m.lanes for m in eng.modes] == [4] and eng.tokens == 2 and eng.channels == 2
    _check(5, 6, 9, eng, GemmTiling(3, 6, 9), 0.0, extreme=True)


def test_chains_cut_where_lanes_would_overflow() -> None:
    """16 rows of W8A8 on DSP48E2: chains of 7 (WP486), 3 of them; worst-case operands stay exact."""
    eng = EngineConfig(16, 2, 0, 8, 4, 8, 28, packing=2)
    assert (eng.chain_rows, eng.chains) == (7, 3)
    _check(5, 4, 33, eng, GemmTiling(5, 4, 33), 0.0, extreme=True)
    _check(5, 4, 33, eng, GemmTiling(5, 4, 16), 0.0, seed=1)


@pytest.mark.parametrize("extreme", [False, True])
def test_pot_array_bit_exact(extreme: bool) -> None:
    eng = EngineConfig(3, 0, 4, 8, 5, 6, 30)
    _check(7, 9, 10, eng, GemmTiling(4, 9, 4), 1.0, extreme=extreme)


@pytest.mark.parametrize("extreme", [False, True])
def test_mixed_engine_bit_exact(extreme: bool) -> None:
    eng = EngineConfig(3, 3, 2, 6, 4, 7, 24, packing=2)
    _check(8, 10, 9, eng, GemmTiling(5, 10, 4), 0.4, extreme=extreme)


def test_partial_sums_wrap_like_twos_complement() -> None:
    # 10-bit partial sums, K = 16 products of −128·−128 overflow them many times
    eng = EngineConfig(2, 2, 2, 8, 4, 8, 10, packing=2)
    _check(3, 4, 16, eng, GemmTiling(3, 4, 5), 0.5, extreme=True)


@pytest.mark.parametrize(
    ("eng", "ratio"),
    [
        (EngineConfig(4, 2, 0, 8, 4, 8, 24, packing=2), 0.0),
        (EngineConfig(9, 2, 0, 8, 4, 8, 24, packing=2), 0.0),
        (EngineConfig(4, 0, 2, 8, 4, 8, 24), 1.0),
    ],
)
def test_fold_spacing_is_the_shortest_that_works(eng: EngineConfig, ratio: float) -> None:
    """Two tokens, many folds: the weight load bounds the fold period; one cycle less breaks it."""
    rng = np.random.default_rng(3)
    a, w, mask = _operands(rng, 2, 4, 20, eng, (8, 8), 4, ratio)
    ref = reference_gemm(a, w, mask, eng)
    run = simulate_gemm(a, w, eng, GemmTiling(2, 4, 20), ratio)
    np.testing.assert_array_equal(run.outputs, ref)
    tight = simulate_gemm(a, w, eng, GemmTiling(2, 4, 20), ratio, slack=-1)
    assert not np.array_equal(tight.outputs, ref)


SMALL = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SMALL
@given(
    data=st.data(),
    rows=st.integers(1, 9),
    cf=st.integers(0, 3),
    cp=st.integers(0, 3),
    packing=st.sampled_from([1, 2, 4]),
    dsp=st.sampled_from(sorted(DSP_SLICES)),
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12)),
)
def test_random_gemms_exact_and_cycle_exact(
    data: st.DataObject,
    rows: int,
    cf: int,
    cp: int,
    packing: int,
    dsp: str,
    shape: tuple[int, int, int],
) -> None:
    if cf + cp == 0:
        cf = 1
    wb, ab = data.draw(st.integers(2, 8)), data.draw(st.integers(2, 8))
    eng = EngineConfig(rows, cf, cp, wb, data.draw(st.integers(2, 5)), ab, ab + 12, packing, dsp)
    bits = (data.draw(st.integers(2, wb)), data.draw(st.integers(2, ab)))
    m, n, k = shape
    ratio = 0.0 if cp == 0 else 1.0 if cf == 0 else data.draw(st.sampled_from([0.25, 0.5, 0.75]))
    tiling = GemmTiling(
        data.draw(st.integers(1, m)), data.draw(st.integers(1, n)), data.draw(st.integers(1, k))
    )
    _check(m, n, k, eng, tiling, ratio, bits=bits, extreme=data.draw(st.booleans()))


def test_lane_modes_of_the_xilinx_white_papers() -> None:
    """WP486: INT8 pairs 18 bits apart accumulate 7 products in a DSP48E2; WP521: four INT4 lanes."""
    e2, e1 = DSP_SLICES["DSP48E2"], DSP_SLICES["DSP48E1"]
    pair = lane_mode(e2, 2, 8, 8)
    assert pair is not None and pair.offsets == (0, 18) and pair.chain_capacity(8, 8) == 7
    quad = lane_mode(e2, 4, 8, 8)
    assert quad is not None and quad.offsets == (0, 11, 22, 33) and quad.lane_widths == (11, 11, 11, 15)
    assert quad.chain_capacity(4, 4) == 15
    pair_e1 = lane_mode(e1, 2, 8, 8)
    assert pair_e1 is not None and pair_e1.chain_capacity(8, 8) == 1  # a 25-bit pre-adder: 16-bit lanes
    assert lane_mode(e2, 2, 8, 16) is None  # 16-bit activations leave no room for a second token
    with pytest.raises(ValueError, match="exceeds one DSP48E2 multiplier"):
        EngineConfig(2, 2, 0, 20, 4, 8, 40)


@SMALL
@given(
    lanes=st.lists(st.integers(-1024, 1023), min_size=4, max_size=4),
)
def test_lane_separation_recovers_every_lane(lanes: list[int]) -> None:
    mode = lane_mode(DSP_SLICES["DSP48E2"], 4, 4, 4)
    assert mode is not None
    packed = sum(v << off for v, off in zip(lanes, mode.offsets, strict=True)) & ((1 << 48) - 1)
    pyrtl.reset_working_block()
    p = pyrtl.Input(48, "p")
    for i, w in enumerate(separate_lanes(p, mode, 11)):
        o = pyrtl.Output(11, f"l{i}")
        o <<= w
    sim = pyrtl.FastSimulation()
    sim.step({"p": packed})
    got = [sim.inspect(f"l{i}") for i in range(4)]
    assert [g - (1 << 11) if g >> 10 else g for g in got] == lanes


def test_pot_pe_exhaustive_4bit_codes() -> None:
    a = pyrtl.Input(8, "a")
    code = pyrtl.Input(4, "code")
    out = pyrtl.Output(16, "out")
    out <<= pot_add(pyrtl.Const(0, 1), a, pot_decode(code), 15, 16)
    sim = pyrtl.FastSimulation()
    for av in range(-128, 128):
        for c in range(16):
            sim.step({"a": av & 0xFF, "code": c})
            v = sim.inspect("out")
            assert (v - (1 << 16) if v >> 15 else v) == av * int(decode_pot(np.array([c]), 4)[0])


@SMALL
@given(
    rows=st.integers(1, 10),
    cf=st.integers(0, 4),
    cp=st.integers(0, 3),
    packing=st.sampled_from([1, 2, 4]),
    wb=st.integers(2, 8),
    ab=st.integers(2, 8),
    dsp=st.sampled_from(sorted(DSP_SLICES)),
)
def test_register_bits_are_the_fabric_registers_the_rtl_builds(
    rows: int, cf: int, cp: int, packing: int, wb: int, ab: int, dsp: str
) -> None:
    if cf + cp == 0:
        cp = 1
    eng = EngineConfig(rows, cf, cp, wb, 4, ab, ab + 14, packing, dsp)
    pyrtl.reset_working_block()
    build_engine(eng, PrimitiveSlices(eng.slice))
    regs = pyrtl.working_block().wirevector_subset(pyrtl.Register)
    assert sum(len(r) for r in regs) == register_bits(eng)
