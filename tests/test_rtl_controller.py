"""PyRTL tile controller vs the Python reference (addresses, tile order) and the model's schedule (cycles)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.arch.controller import (
    BufferPort,
    ControllerSpec,
    schedule_cycles,
    tile_order,
)
from hwmodel.cost.controller import controller_features, controller_register_bits
from hwmodel.rtl.controller import simulate_controller
from hwmodel.validate import CHAINS, SUCCESSORS, chain_case, controller_case

SPEC = ControllerSpec(
    3,
    (
        BufferPort("input_a", "a", 4, 3, 16),
        BufferPort("weight_b", "b", 3, 4, 8),
        BufferPort("output_c", "c", 3, 2, 12),
        BufferPort("weight_pot", "b", 1, 2, 4),
        BufferPort("output_pot", "c", 1, 2, 20),
    ),
)


def test_tile_order_pingpong_and_addresses() -> None:
    counts = (2, 3, 2, 3)
    rng = np.random.default_rng(0)
    n = int(np.prod(counts))
    compute = [int(c) for c in rng.integers(2, 30, n)]
    transfer = [int(t) for t in rng.integers(1, 30, n)]
    run = simulate_controller(SPEC, counts, 40, compute, transfer, {"input_a": 5, "output_c": 3}, seed=3)
    assert run.cycles == schedule_cycles(40, compute, transfer)
    assert [t[:4] for t in run.tiles] == tile_order(counts)
    assert [t[4] for t in run.tiles] == [i % 2 for i in range(n)]  # the copies alternate
    assert [t[5] for t in run.tiles] == [int(t[3] == counts[3] - 1) for t in run.tiles]
    assert run.address_checks > 0 and run.address_mismatches == 0


def test_single_tile_and_one_cycle_transfers() -> None:
    run = simulate_controller(SPEC, (1, 1, 1, 1), 2, [2], [1])
    assert run.cycles == 4 and run.address_mismatches == 0
    with pytest.raises(ValueError):
        simulate_controller(SPEC, (1, 1, 1, 1), 1, [2], [1])


def test_register_bits_and_features() -> None:
    # 12 control + 4 loops × 3 + Σ (2 × addr + bank counter)
    assert controller_register_bits(SPEC) == 12 + 12 + (6 + 2) + (8 + 2) + (4 + 2) + 4 + 4
    feats = controller_features(SPEC)
    assert feats["bank"] == 4 + 3 + 3 and feats["mux_bit"] == 3 * 12 * 2


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 20),
    n=st.integers(1, 20),
    k=st.integers(1, 20),
    tiles=st.tuples(st.integers(3, 12), st.integers(3, 12), st.integers(3, 12)),
    repeat=st.integers(1, 2),
    shape=st.sampled_from([(2, 2, 0), (3, 2, 1), (2, 0, 3), (4, 1, 2)]),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    bpc=st.sampled_from([1.5, 4.0, 16.0]),
    successor=st.sampled_from(SUCCESSORS),
    lanes=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_controller_cycles_match_model(
    m: int,
    n: int,
    k: int,
    tiles: tuple[int, int, int],
    repeat: int,
    shape: tuple[int, int, int],
    ratio: float,
    bpc: float,
    successor: str | None,
    lanes: int,
    seed: int,
) -> None:
    """Random small GEMMs, alone or followed by a non-linear op: the simulated controller, driven
    by the per-tile compute, transfer and job times of :func:`layer_schedule`, takes exactly the
    model's per-layer latency, its tiles and hand-overs in the schedule's order."""
    rows, cols, pot_cols = shape
    if cols == 0:
        ratio = 1.0
        if successor == "softmax":
            cols, pot_cols = 2, pot_cols - 1
    if pot_cols == 0:
        ratio = 0.0
    if successor == "gelu":
        repeat = 1
    case = controller_case(
        (m, n, k), tiles, repeat, (rows, cols, pot_cols), ratio, bpc, successor, lanes, seed
    )
    assert not case.cycle_mismatch, (case.run.cycles, case.schedule.cycles, case.latency)
    assert not case.order_mismatch
    assert case.run.address_mismatches == 0
    assert (case.exposed > 0) == (successor is not None)


def test_overlap_hides_what_the_gemm_covers() -> None:
    """A unit much faster than the GEMM exposes only its last job; a slow one stalls the tiles."""
    fast = controller_case((16, 16, 64), (4, 8, 8), 1, (2, 2, 0), 0.0, 16.0, "gelu", lanes=4)
    assert fast.exposed == fast.schedule.jobs[-1]  # ⌈4·8/4⌉ + 4 behind the last tile only
    slow = controller_case((16, 16, 4), (4, 16, 4), 2, (2, 2, 0), 0.0, 16.0, "softmax", lanes=1)
    assert slow.exposed > slow.schedule.jobs[-1]
    assert slow.run.cycles == slow.latency


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(CHAINS)),
    dims=st.tuples(st.integers(1, 20), st.integers(1, 20), st.integers(1, 20), st.integers(1, 20)),
    tiles=st.tuples(st.integers(3, 12), st.integers(3, 12), st.integers(3, 12)),
    heads=st.integers(2, 3),
    shape=st.sampled_from([(2, 2, 0), (3, 2, 1), (4, 1, 2)]),
    ratio=st.sampled_from([0.0, 0.5, 1.0]),
    bpc=st.sampled_from([1.5, 4.0, 16.0]),
    lanes=st.integers(1, 4),
    own=st.booleans(),
    kernel=st.sampled_from(["poly", "shift"]),
    seed=st.integers(0, 2**16),
)
def test_chain_cycles_match_model(
    kind: str,
    dims: tuple[int, int, int, int],
    tiles: tuple[int, int, int],
    heads: int,
    shape: tuple[int, int, int],
    ratio: float,
    bpc: float,
    lanes: int,
    own: bool,
    kernel: str,
    seed: int,
) -> None:
    """Two GEMMs with a non-linear op between them, back to back on one simulated controller:
    where the model leaves the op's last job beside the second GEMM, that GEMM's wait for it,
    cycle for cycle, and the sum of both layers is the model's."""
    if shape[2] == 0:
        ratio = 0.0
    case = chain_case(kind, dims, tiles, heads, shape, ratio, bpc, lanes, own, seed, kernel)
    assert not case.cycle_mismatch, ([r.cycles for r in case.runs], [s.cycles for s in case.schedules])
    assert all(r.address_mismatches == 0 for r in case.runs)
    # the producer leaves its job where the consumer has a group before the rows it reads
    n_m = -(-dims[0] // min(tiles[0], dims[0]))
    assert case.deferred == (n_m >= 2 if kind != "softmax" else True)


def test_deferred_job_waits_at_the_last_group() -> None:
    """A long LayerNorm job left by proj: fc1 runs its first m tile beside it and holds only the
    transfer of its last m tile; without the deferral the producer would wait the whole job."""
    case = chain_case("layernorm", (16, 16, 16, 32), (8, 8, 8), 1, (2, 2, 0), 0.0, 16.0, lanes=1, own=False)
    first, second = case.schedules
    assert case.deferred and first.defer and second.pending == first.jobs[-1]
    assert second.wait == ("m", 1) and second.cycles > second.exposed_cycles >= 0
    drained = replace(first, defer=False).cycles
    assert first.cycles + second.cycles < drained + replace(second, pending=0).cycles
