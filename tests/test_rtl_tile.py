"""PyRTL tile frontend: C bit-exact against the integer reference, ``done − start`` against the
analytic tile cycles (+ TILE_LATENCY) and the harness, the engine ports against the harness's
schedule cycle by cycle. (simulate_tile and tile_verilog start from a fresh PyRTL block.)"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.arch.buffers import bank_memory
from hwmodel.arch.cycles import mixed_tile_cycles, split_channels
from hwmodel.arch.engine import EngineConfig
from hwmodel.model.evaluation import _tile_words
from hwmodel.rtl.harness import (
    GemmTiling,
    pot_columns,
    reference_gemm,
    simulate_gemm,
    sub_arrays,
    tile_events,
)
from hwmodel.rtl.tile import (
    TILE_LATENCY,
    TileLimits,
    TileRun,
    cosimulate_tile,
    simulate_tile,
    tile_buffer_shapes,
    tile_buffers,
    tile_resources,
    tile_verilog,
)
from hwmodel.rtl.verilog import iverilog_available


def _operands(
    m: int, n: int, k: int, eng: EngineConfig, bits: tuple[int, int], ratio: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wb, ab = bits
    a = rng.integers(-(1 << (ab - 1)), 1 << (ab - 1), size=(m, k))
    wf = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(k, n))
    wp = rng.integers(0, 1 << eng.pot_weight_bits, size=(k, n))
    mask = pot_columns(n, n, ratio)
    return a, np.where(mask[None, :], wp, wf), mask


def _harness_ports(a: np.ndarray, w: np.ndarray, eng: EngineConfig, ratio: float, run: TileRun) -> None:
    """The frontend drove every engine port as the harness's schedule does: control flags and
    activations in every cycle (0 where the harness presents nothing), weights in the cycles the
    harness shifts them in."""
    m, k = a.shape
    n_fix, _ = split_channels(w.shape[1], ratio)
    fix, pot = list(range(n_fix)), list(range(n_fix, w.shape[1]))
    mode = run.mode or (eng.modes[0] if eng.cols_fixed else None)  # a fixed sub-array left idle
    events, _ = tile_events((tuple(range(m)), fix, pot, 0, k), sub_arrays(eng, mode), a, w, eng)
    (traced,) = run.ports
    assert max(events) < run.cycles[0] - TILE_LATENCY
    for name, values in traced.items():
        assert len(values) == run.cycles[0] - TILE_LATENCY
        for t, value in enumerate(values):
            want = events.get(t, {})
            if "_w" in name and name not in want:
                continue  # the weight registers ignore the port outside the load cycles
            assert value == want.get(name, 0), f"{name} in cycle {t}"


def _check(
    eng: EngineConfig,
    m: int,
    n: int,
    k: int,
    ratio: float = 0.0,
    bits: tuple[int, int] | None = None,
    seed: int = 0,
    tk: int | None = None,
    trace: bool = False,
) -> TileRun:
    layer = bits or (eng.weight_bits, eng.act_bits)
    a, w, mask = _operands(m, n, k, eng, layer, ratio, seed)
    run = simulate_tile(a, w, eng, ratio, layer, tk=tk, trace=trace)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, eng))
    depth = k if tk is None else tk
    expected = [mixed_tile_cycles(m, n, min(depth, k - k0), eng, ratio, layer) for k0 in range(0, k, depth)]
    assert list(run.cycles) == [c + TILE_LATENCY for c in expected]
    if trace:
        _harness_ports(a, w, eng, ratio, run)
    return run


def test_one_unpacked_tile_takes_the_harness_cycles_plus_two() -> None:
    """3 rows × 2 columns, one token and one channel per PE: 5 tokens, k 7 (3 k-folds), 3 channels
    (2 channel folds), period max(5, L + R − 1) = 5: C exact, ``done − start`` = harness cycles + 2
    (start latch, buffer read)."""
    eng = EngineConfig(3, 2, 0, 8, 4, 8, 24, packing=1)
    a, w, mask = _operands(5, 3, 7, eng, (8, 8), 0.0, 1)
    run = simulate_tile(a, w, eng, trace=True)
    harness = simulate_gemm(a, w, eng, GemmTiling(5, 3, 7), 0.0)
    np.testing.assert_array_equal(run.outputs, harness.outputs)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, eng))
    assert run.cycles == (harness.cycles + TILE_LATENCY,)
    assert harness.cycles == mixed_tile_cycles(5, 3, 7, eng, 0.0, (8, 8)) == (6 - 1) * 5 + 5 + 3 + 3 + 2 + 3
    _harness_ports(a, w, eng, 0.0, run)


def test_engine_ports_follow_the_harness_schedule() -> None:
    eng = EngineConfig(4, 3, 0, 8, 4, 8, 26, packing=1)
    _check(eng, 6, 7, 10, seed=2, trace=True)


def test_k_tiles_add_to_the_output_buffer() -> None:
    """Three k tiles back to back on one frontend: the later ones start with ``k_first`` low and
    add to the partial sums C holds."""
    eng = EngineConfig(3, 2, 0, 8, 4, 8, 24, packing=1)
    run = _check(eng, 4, 3, 8, tk=3, seed=3)
    assert len(run.cycles) == 3


def test_one_row_forwards_the_partial_sum_written_in_the_same_cycle() -> None:
    """rows = 1, one token: a fold every cycle, so a column reads the word it writes in that
    cycle (the C banks' write-first bypass)."""
    eng = EngineConfig(1, 2, 0, 8, 4, 8, 24, packing=1)
    _check(eng, 1, 3, 4, seed=4, trace=True)


def test_extreme_operands() -> None:
    eng = EngineConfig(4, 2, 0, 8, 4, 8, 16, packing=1)  # 16-bit sums wrap like the reference
    a = np.full((3, 9), -128, dtype=np.int64)
    w = np.full((9, 3), -128, dtype=np.int64)
    run = simulate_tile(a, w, eng)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, pot_columns(3, 3, 0.0), eng))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 3),
    m=st.integers(1, 5),
    n=st.integers(1, 6),
    k=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_unpacked_tiles_property(rows: int, cols: int, m: int, n: int, k: int, seed: int) -> None:
    eng = EngineConfig(rows, cols, 0, 8, 4, 8, 24, packing=1)
    _check(eng, m, n, k, seed=seed, trace=True)


@pytest.mark.parametrize("dsp", ["DSP48E1", "DSP48E2"])
def test_two_tokens_per_slice(dsp: str) -> None:
    """WP486 packing: an odd token count leaves token 1 of the last step empty (presented as 0)."""
    eng = EngineConfig(4, 2, 0, 8, 4, 8, 26, packing=2, dsp=dsp)
    assert (eng.tokens, eng.channels) == (2, 1)
    _check(eng, 7, 5, 9, seed=5, trace=True)


def test_four_int4_lanes_and_the_two_lane_mode_of_one_engine() -> None:
    """A packing-4 engine of 8-bit widths: W4A4 in the 4-lane mode (two channels per column and
    fold, B words of two weights, C words of four slots), W8A8 in the 2-lane one (``f_mode``; two
    channel folds share each B and C word: 9 channels on 2 columns = 5 folds in 3 words)."""
    eng = EngineConfig(6, 2, 0, 8, 4, 8, 26, packing=4)
    assert [m.lanes for m in eng.modes] == [2, 4]
    quad = _check(eng, 7, 9, 13, bits=(4, 4), seed=6, trace=True)
    pair = _check(eng, 7, 9, 13, bits=(8, 8), seed=7, trace=True)
    assert quad.cycles[0] < pair.cycles[0]
    _check(eng, 7, 9, 13, bits=(8, 8), seed=17, tk=5)  # later k tiles add to both folds of a word


def test_pure_int4_engine() -> None:
    eng = EngineConfig(4, 2, 0, 4, 4, 4, 16, packing=4)
    assert [m.lanes for m in eng.modes] == [4]
    _check(eng, 5, 6, 9, seed=8, trace=True)
    _check(eng, 5, 6, 9, seed=9, tk=4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 2),
    packing=st.sampled_from([2, 4]),
    narrow=st.booleans(),
    m=st.integers(1, 5),
    n=st.integers(1, 6),
    k=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_packed_tiles_property(
    rows: int, cols: int, packing: int, narrow: bool, m: int, n: int, k: int, seed: int
) -> None:
    eng = EngineConfig(rows, cols, 0, 8, 4, 8, 26, packing=packing)
    _check(eng, m, n, k, bits=(4, 4) if narrow else (8, 8), seed=seed, trace=True)


def test_pot_sub_array_alone() -> None:
    eng = EngineConfig(3, 0, 2, 8, 4, 8, 24, packing=1)
    _check(eng, 5, 3, 7, ratio=1.0, seed=10, trace=True)


def test_pot_extreme_codes_wrap_like_the_reference() -> None:
    """The largest shift on the most negative activation in 20-bit sums (they wrap)."""
    eng = EngineConfig(4, 0, 2, 8, 4, 8, 20, packing=1)
    a = np.full((3, 9), -128, dtype=np.int64)
    w = np.full((9, 3), (1 << eng.pot_weight_bits) - 1, dtype=np.int64)  # −2^(max shift)
    run = simulate_tile(a, w, eng, 1.0)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, pot_columns(3, 3, 1.0), eng))


@pytest.mark.parametrize("packing", [1, 2])
def test_mixed_tile_runs_both_sub_arrays_at_once(packing: int) -> None:
    """Fixed and PoT sub-arrays take the tile together (the tile's channels split by the ratio,
    each sub-array with its own A copy); ``done`` comes with the longer of the two."""
    eng = EngineConfig(3, 2, 2, 8, 4, 8, 24, packing=packing)
    _check(eng, 5, 7, 8, ratio=0.4, seed=11, trace=True)
    _check(eng, 5, 7, 8, ratio=0.4, seed=12, tk=3)


def test_mixed_engine_with_a_tile_of_one_kind() -> None:
    """A ratio of 0 or 1 leaves one sub-array idle (its channels 0): done with the other."""
    eng = EngineConfig(2, 2, 1, 8, 4, 8, 24, packing=2)
    _check(eng, 4, 3, 5, ratio=0.0, seed=13)
    _check(eng, 4, 3, 5, ratio=1.0, seed=14, trace=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 4),
    cols_fixed=st.integers(1, 2),
    cols_pot=st.integers(1, 2),
    packing=st.sampled_from([1, 2]),
    ratio=st.sampled_from([0.25, 0.5, 0.75]),
    m=st.integers(1, 5),
    n=st.integers(1, 6),
    k=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_mixed_tiles_property(
    rows: int, cols_fixed: int, cols_pot: int, packing: int, ratio: float, m: int, n: int, k: int, seed: int
) -> None:
    eng = EngineConfig(rows, cols_fixed, cols_pot, 8, 4, 8, 24, packing=packing)
    _check(eng, m, n, k, ratio=ratio, seed=seed, trace=True)


@pytest.mark.parametrize(
    ("eng", "ratio"),
    [
        (EngineConfig(3, 2, 2, 8, 4, 8, 24, packing=2), 0.4),
        (EngineConfig(4, 2, 0, 4, 4, 4, 16, packing=4), 0.0),
        (EngineConfig(5, 3, 0, 8, 4, 8, 26, packing=1), 0.0),
        (EngineConfig(6, 2, 0, 8, 4, 8, 26, packing=4), 0.0),
    ],
)
def test_buffers_are_the_ones_the_cost_model_prices(eng: EngineConfig, ratio: float) -> None:
    """Banks, word widths and words per bank of A, B and C as ``_tile_words`` sizes them for a
    (7, 9, 13) tile (on the engine of two packing modes, two folds of the 2-lane mode share a
    word of two channels)."""
    tm, tn, tk = 7, 9, 13
    ints = np.zeros((5, 1), dtype=np.int64)
    ints[2:5, 0] = (tm, tn, tk)
    words = _tile_words(
        ints, np.array([ratio]), 0, 1, eng.rows, eng.tokens, eng.channels, eng.cols_fixed, eng.cols_pot
    )
    n_fix, n_pot = split_channels(tn, ratio)
    shapes = tile_buffer_shapes(eng, TileLimits(tm, tk, n_fix, n_pot))
    priced = {
        "a": (eng.rows, words[0], eng.tokens * eng.act_bits),
        "fb": (eng.cols_fixed, words[1], eng.channels * eng.weight_bits),
        "fc": (eng.cols_fixed, words[2], eng.slots * eng.acc_bits),
        "pb": (eng.cols_pot, words[3], eng.pot_weight_bits),
        "pc": (eng.cols_pot, words[4], eng.acc_bits),
    }
    priced = {k: v for k, v in priced.items() if v[0] and v[1]}
    assert shapes == priced


def test_one_channel_on_an_engine_of_four_per_fold() -> None:
    """The channel step of a fold (κ·C = 4) is wider than the channel extent's port."""
    eng = EngineConfig(1, 2, 0, 8, 4, 8, 26, packing=4)
    _check(eng, 1, 1, 1, trace=True)


def test_verilog_export_is_one_reproducible_module() -> None:
    eng = EngineConfig(2, 2, 1, 8, 4, 8, 24, packing=2)
    limits = TileLimits(5, 6, 4, 2)
    text = tile_verilog(eng, limits)
    assert text == tile_verilog(eng, limits)
    assert len(re.findall(r"^\s*module\b", text, flags=re.MULTILINE)) == 1
    assert len(re.findall(r"^\s*DSP48E2\b", text, flags=re.MULTILINE)) == eng.rows * eng.cols_fixed
    for port in ("start", "done", "busy", "tokens", "depth", "f_channels", "p_channels", "k_first", "a_we"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port};", text), port


@pytest.mark.slow
def test_yosys_maps_the_buffers_as_the_cost_model_prices_them() -> None:
    """The tile's memories become the LUT RAM primitives ``bank_memory`` counts (A twice on a
    mixed engine), its PEs one DSP slice each (about 30 s of synthesis)."""
    eng = EngineConfig(4, 2, 2, 8, 4, 8, 24, packing=2)
    limits = TileLimits(16, 16, 8, 8)
    res = tile_resources(eng, limits)
    priced = sum(
        copies * banks * bank_memory(words, width, "xcup").lutram_primitives
        for copies, banks, words, width in tile_buffers(eng, limits).values()
    )
    assert res.tile.lutram == priced
    assert res.tile.dsp == res.engine.dsp == eng.dsp_slices
    assert res.frontend_lut > 0 and res.frontend_ff > 0


@pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed")
@pytest.mark.parametrize(
    ("eng", "ratio", "tk"),
    [
        (EngineConfig(2, 2, 1, 8, 4, 8, 24, packing=2), 0.4, None),
        (EngineConfig(1, 2, 0, 8, 4, 8, 24, packing=1, dsp="DSP48E1"), 0.0, 2),
        (EngineConfig(2, 2, 0, 8, 4, 8, 26, packing=4), 0.0, 2),  # 2-lane mode: folds share words
    ],
)
def test_verilog_replays_the_pyrtl_run(eng: EngineConfig, ratio: float, tk: int | None) -> None:
    """The exported Verilog (memories, DSP primitives) under Icarus: ``done`` in the same cycles
    and the same C words read back as in PyRTL's simulation."""
    # the Verilog's memories start undefined (PyRTL's at 0): 4 channels and k tiles of whole folds,
    # so that no fold reads an unwritten weight row (× 0 is x) or C slot (a lone 2-lane fold)
    a, w, mask = _operands(3, 4, 4, eng, (8, 8), ratio, 15)
    run = simulate_tile(a, w, eng, ratio, tk=tk, record=True)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, eng))
    verilog = cosimulate_tile(eng, run)
    assert verilog.done_cycles == run.done_cycles and len(run.done_cycles) == len(run.cycles)
    assert verilog.reads == run.reads and run.reads


@pytest.mark.parametrize("dsp", ["DSP48E1", "DSP48E2"])
def test_columns_of_several_cascade_chains(dsp: str) -> None:
    """9 rows in chains of ≤ 7 (W8A8 in two 18-bit lanes): rows take their activations at their
    chain offsets (the A banks' skewed read addresses)."""
    eng = EngineConfig(9, 2, 1, 8, 4, 8, 26, packing=2, dsp=dsp)
    assert eng.chain_rows < eng.rows
    _check(eng, 3, 5, 20, ratio=0.2, seed=16, trace=True)
