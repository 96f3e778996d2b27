"""Verilog export of the engines: fabric + DSP primitives, Icarus co-simulation of whole GEMMs
against PyRTL, Yosys re-synthesis (slow)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyrtl
import pytest

from hwmodel.arch.engine import EngineConfig
from hwmodel.calibration.tables import read_table
from hwmodel.cost.coefficients import load_coefficients
from hwmodel.cost.engine import engine_resources
from hwmodel.rtl.harness import GemmTiling, pot_columns, reference_gemm, simulate_gemm
from hwmodel.rtl.verilog import (
    cosimulate_verilog,
    engine_verilog,
    iverilog_available,
    synthesize_engine,
    write_engine_verilog,
)

needs_icarus = pytest.mark.skipif(
    not iverilog_available(), reason="iverilog not installed (apt-get install iverilog)"
)


@pytest.fixture(autouse=True)
def fresh_block() -> Iterator[None]:
    pyrtl.reset_working_block()
    yield
    pyrtl.reset_working_block()


def test_export_declares_every_port_and_one_primitive_per_fixed_pe(tmp_path: Path) -> None:
    eng = EngineConfig(2, 3, 2, 8, 4, 8, 24, packing=4)
    text = write_engine_verilog(eng, tmp_path / "rtl" / "engine.v").read_text()
    assert text.startswith("//") and text.count("module toplevel(") == 1 and text.count("endmodule") == 1
    top = text.split("endmodule", 1)[0]
    header = top[top.index("module toplevel(") :].split(";", 1)[0]
    assert "__" not in header  # slice boundaries are internal wires, not ports
    for port in ("f_a1_1", "f_w2_1", "f_mode", "f_load", "f_swap", "p_w1", "f_out2_3", "f_req0", "p_vld1"):
        assert re.search(rf"\b{port}\b", top), port
    assert len(re.findall(r"^\s*DSP48E2 #", top, flags=re.MULTILINE)) == eng.dsp_slices
    assert "PCIN(dsp_r0_c0__PCOUT)" in top and "BCIN(dsp_r0_c0__BCOUT)" in top  # the cascades
    e1 = engine_verilog(EngineConfig(2, 2, 0, 8, 4, 8, 24, dsp="DSP48E1"))
    assert len(re.findall(r"^\s*DSP48E1 #", e1, flags=re.MULTILINE)) == 4 and "DSP48E2" not in e1


def test_verilog_text_does_not_depend_on_what_was_built_before() -> None:
    """The same engine, controller or unit gives the same text before and after other netlists
    (PyRTL's name counters start afresh): an exported design is reproducible byte for byte."""
    from hwmodel.arch.nonlinear import design_spec
    from hwmodel.rtl.nonlinear import unit_verilog

    eng = EngineConfig(2, 3, 2, 8, 4, 8, 24, packing=4)
    first = engine_verilog(eng)
    unit = unit_verilog("gelu", design_spec("gelu"), 1, 0)
    engine_verilog(EngineConfig(2, 2, 0, 8, 4, 8, 24, dsp="DSP48E1"))
    assert engine_verilog(eng) == first
    assert unit_verilog("gelu", design_spec("gelu"), 1, 0) == unit


def _cosim(
    eng: EngineConfig, m: int, n: int, k: int, tiling: GemmTiling, ratio: float, bits: tuple[int, int]
) -> None:
    rng = np.random.default_rng(7)
    wb, ab = bits
    a = rng.integers(-(1 << (ab - 1)), 1 << (ab - 1), size=(m, k))
    a[0, 0] = -(1 << (ab - 1))
    mask = pot_columns(n, tiling.tn, ratio)
    wf = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(k, n))
    w = np.where(mask[None, :], rng.integers(0, 1 << eng.pot_weight_bits, size=(k, n)), wf)
    run = simulate_gemm(a, w, eng, tiling, ratio, layer_bits=bits, record=True)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, eng))
    names = sorted(run.output_vectors[0])
    got = cosimulate_verilog(engine_verilog(eng), run.input_vectors, names)
    assert len(got) == len(run.output_vectors)
    assert got == list(run.output_vectors)


@needs_icarus
@pytest.mark.parametrize(
    ("eng", "bits", "ratio"),
    [
        # DSP48E2 (our model, dsp48e2_sim.v), two chains, mixed with PoT columns
        (EngineConfig(9, 2, 2, 8, 4, 8, 26, packing=2), (8, 8), 0.4),
        # DSP48E2 in the 4-lane mode of a dual-mode engine
        (EngineConfig(4, 2, 0, 8, 4, 8, 24, packing=4), (4, 4), 0.0),
        # DSP48E1 (Yosys's own simulation model from cells_sim.v)
        (EngineConfig(3, 2, 2, 8, 4, 8, 24, packing=2, dsp="DSP48E1"), (8, 8), 0.4),
    ],
)
def test_icarus_cosimulation_matches_pyrtl_every_cycle(
    eng: EngineConfig, bits: tuple[int, int], ratio: float
) -> None:
    _cosim(eng, 5, 7, 12, GemmTiling(5, 7, 6), ratio, bits)


@pytest.mark.slow
def test_resynthesis_reproduces_committed_table_and_model() -> None:
    row = next(r for r in read_table() if (r.synth_family, r.name) == ("xcup", "r4_f4w8_p0w4_a8_acc24_x2_e2"))
    res = synthesize_engine(row.engine, row.synth_family)
    assert (res.lut, res.ff, res.dsp, res.yosys_version) == (row.lut, row.ff, row.dsp, row.yosys_version)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "dsp"), [("xcup", "DSP48E2"), ("xc7", "DSP48E1")])
def test_off_grid_engine_dsp_and_ff_exact_lut_close(family: str, dsp: str) -> None:
    """An engine outside the calibration grid: DSP and FF exact, LUT within the validation bound."""
    eng = EngineConfig(5, 3, 2, 6, 4, 7, 22, packing=4, dsp=dsp)
    res = synthesize_engine(eng, family)
    model = engine_resources(eng, family, load_coefficients())
    assert res.dsp == model.dsp == 15
    assert res.ff == model.ff
    assert res.bram36 == 0.0
    assert abs(model.lut - res.lut) / res.lut < 0.15
