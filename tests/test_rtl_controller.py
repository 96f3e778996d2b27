"""PyRTL tile controller vs the Python reference (addresses, tile order) and the model's schedule (cycles)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.arch.bits import bits_for
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.arch.controller import (
    BufferPort,
    ControllerSpec,
    layer_schedule,
    schedule_cycles,
    tile_order,
)
from hwmodel.cost.coefficients import load_coefficients
from hwmodel.cost.controller import controller_features, controller_register_bits
from hwmodel.model.evaluation import _engine, _gemm_timing, _layer_arrays
from hwmodel.rtl.controller import simulate_controller
from hwmodel.target.workload import GemmOp, Workload

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


def _one_gemm(m: int, n: int, k: int, repeat: int) -> Workload:
    op = GemmOp("blocks.0.attn.qkv", "qkv", m, n, k, repeat)
    return Workload("one_gemm", 8, 1, 1, m, k, 1, repeat, n, n, (op,))


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
    # 7 control + 4 loops × 3 + Σ (2 × addr + bank counter)
    assert controller_register_bits(SPEC) == 7 + 12 + (6 + 2) + (8 + 2) + (4 + 2) + 4 + 4
    feats = controller_features(SPEC)
    assert feats["bank"] == 4 + 3 + 3 and feats["mux_bit"] == 3 * 12 * 2


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 20),
    n=st.integers(1, 20),
    k=st.integers(1, 20),
    tiles=st.tuples(st.integers(3, 12), st.integers(3, 12), st.integers(3, 12)),
    repeat=st.integers(1, 2),
    shape=st.sampled_from([(2, 2, 0), (3, 2, 1), (2, 0, 3), (4, 1, 2)]),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    bpc=st.sampled_from([1.5, 4.0, 16.0]),
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
    seed: int,
) -> None:
    """Random small GEMMs: the simulated controller, driven by the per-tile compute and transfer
    times of :func:`layer_schedule`, takes exactly the model's per-layer latency."""
    rows, cols, pot_cols = shape
    if cols == 0:
        ratio = 1.0
    if pot_cols == 0:
        ratio = 0.0
    hw = LayerHw(weight_bits=8, act_bits=8, pot_ratio=ratio, tm=tiles[0], tn=tiles[1], tk=tiles[2])
    cfg = AcceleratorConfig(freq_mhz=200.0, rows=rows, cols=cols + pot_cols, pot_cols=pot_cols, default=hw)
    wl = _one_gemm(m, n, k, repeat)
    la = _layer_arrays(wl, cfg)
    coef = load_coefficients()
    engine = _engine(cfg, la, "DSP48E2")
    dram = coef.dram_latency_cycles(cfg.freq_mhz)
    model_latency = int(_gemm_timing(wl, engine, la, bpc, dram).latency[0])
    sched = layer_schedule(m, n, k, tiles, repeat, engine, ratio, (8, 8), bpc, dram)
    assert sched.cycles == model_latency
    spec = ControllerSpec(bits_for(max(sched.counts)), SPEC.buffers)
    run = simulate_controller(spec, sched.counts, sched.first_load, sched.compute, sched.transfer, seed=seed)
    assert run.cycles == model_latency
    assert [t[:4] for t in run.tiles] == tile_order(sched.counts)
    assert run.address_mismatches == 0
