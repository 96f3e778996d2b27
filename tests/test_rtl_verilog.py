"""Verilog export of the engines: Icarus co-simulation of one tile, Yosys re-synthesis (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyrtl
import pytest

from hwmodel.calibrate import read_table
from hwmodel.cost import engine_resources, load_coefficients
from hwmodel.rtl.engines import EngineConfig
from hwmodel.rtl.harness import GemmTiling, pot_columns, reference_gemm, simulate_gemm
from hwmodel.rtl.verilog import (
    cosimulate_verilog,
    engine_verilog,
    iverilog_available,
    synthesize_engine,
    write_engine_verilog,
)


@pytest.fixture(autouse=True)
def fresh_block() -> Iterator[None]:
    pyrtl.reset_working_block()
    yield
    pyrtl.reset_working_block()


def test_export_declares_every_port(tmp_path: Path) -> None:
    cfg = EngineConfig(2, 3, 2, 8, 4, 8, 24, 2)
    text = write_engine_verilog(cfg, tmp_path / "rtl" / "engine.v").read_text()
    assert text.startswith("//") and "module toplevel(" in text
    for port in ("f_a1", "f_w2", "p_w1", "f_pl_row", "p_rd_row", "f_out2", "p_done"):
        assert port in text


@pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed (apt-get install iverilog)")
def test_icarus_cosimulation_of_one_tile_matches_pyrtl() -> None:
    cfg = EngineConfig(3, 3, 2, 8, 4, 8, 24, 2)
    rng = np.random.default_rng(7)
    m, n, k, ratio = 3, 5, 6, 0.4
    a = rng.integers(-128, 128, size=(m, k))
    a[0, 0] = -128
    mask = pot_columns(n, n, ratio)
    w = np.where(mask[None, :], rng.integers(0, 16, size=(k, n)), rng.integers(-128, 128, size=(k, n)))
    run = simulate_gemm(a, w, cfg, GemmTiling(m, n, k), ratio, record=True)
    np.testing.assert_array_equal(run.outputs, reference_gemm(a, w, mask, cfg))
    names = sorted(run.output_vectors[0])
    got = cosimulate_verilog(engine_verilog(cfg), run.input_vectors, names)
    assert len(got) == len(run.output_vectors)
    assert got == list(run.output_vectors)
    assert sum(v["f_done"] for v in got) == 1 and sum(v["p_done"] for v in got) == 1


@pytest.mark.slow
def test_resynthesis_reproduces_committed_table_and_model() -> None:
    row = next(r for r in read_table() if (r.synth_family, r.name) == ("xcup", "r4_f4w8_p0w4_a8_acc24_l2"))
    res = synthesize_engine(row.config(), row.synth_family)
    assert (res.lut, res.ff, res.dsp, res.yosys_version) == (
        row.lut,
        row.ff,
        row.dsp,
        row.yosys_version,
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", ["xcup", "xc7"])
def test_off_grid_engine_dsp_exact_ff_lut_close(family: str) -> None:
    """An engine outside the calibration grid: DSP exact; FF exact where Yosys keeps every register
    in fabric (UltraScale+), close where it packs some into DSP48E1 slices (7-series); LUT close."""
    cfg = EngineConfig(2, 3, 2, 8, 4, 8, 20, 2)
    res = synthesize_engine(cfg, family)
    model = engine_resources(2, 3, 2, 8, 4, 8, 20, family, load_coefficients())
    assert res.dsp == model.dsp == 4
    if family == "xcup":
        assert res.ff == model.ff
    else:
        assert abs(model.ff - res.ff) / res.ff < 0.05
    assert res.bram36 == 0.0
    assert abs(model.lut - res.lut) / res.lut < 0.25
