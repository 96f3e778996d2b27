"""The committed Yosys table, the fitted coefficients and the analytic resource model."""

from __future__ import annotations

import json
import re

import pytest

from hwmodel.arch.buffers import bank_memory
from hwmodel.arch.engine import EngineConfig
from hwmodel.arch.intops import NONLINEAR_BITS, VARIANTS
from hwmodel.base.errors import UserError
from hwmodel.calibrate import main
from hwmodel.calibration.tables import (
    TABLE_PATH,
    default_grid,
    fit_engines,
    fit_nonlinear,
    is_holdout,
    memory_grid,
    memory_row,
    merge_nonlinear_rows,
    nonlinear_grid,
    nonlinear_row,
    read_memory_table,
    read_nonlinear_table,
    read_table,
)
from hwmodel.cost.coefficients import COEFFICIENTS_PATH, load_coefficients, nonlinear_section
from hwmodel.cost.engine import LUT_FEATURES, engine_resources
from hwmodel.cost.nonlinear import lane_dsp_slices, unit_feature_names, unit_resources
from hwmodel.target.device import SYNTH_FAMILIES, known_devices, load_device
from hwmodel.validate import nonlinear_point


def test_table_covers_the_grid_with_one_yosys_version() -> None:
    rows = read_table()
    assert [(r.synth_family, r.engine) for r in rows] == default_grid()
    assert {r.yosys_version for r in rows} == {load_coefficients().yosys_version}
    for fam in SYNTH_FAMILIES:
        mine = [r.engine for r in rows if r.synth_family == fam]
        assert len(mine) >= 20, fam
        assert {(e.cols_fixed > 0, e.cols_pot > 0) for e in mine} == {
            (True, False),
            (False, True),
            (True, True),
        }
        lanes = {m.lanes for e in mine if e.cols_fixed for m in e.modes}
        assert lanes == {1, 2, 4}, fam  # every packing mode is synthesised
        assert any(e.chains > 1 for e in mine), fam  # and chains cut by the lane capacity
        assert {e.dsp for e in mine} == {SYNTH_FAMILIES[fam]}


def test_memory_table_covers_its_grid_with_the_same_yosys() -> None:
    rows = read_memory_table()
    assert [(r.synth_family, r.depth_words, r.width_bits) for r in rows] == memory_grid()
    assert {r.yosys_version for r in rows} == {load_coefficients().yosys_version}


def test_committed_coefficients_are_the_fit_of_the_committed_table() -> None:
    fitted = fit_engines(read_table())
    coef = load_coefficients()
    assert set(fitted) == set(coef.array) == set(SYNTH_FAMILIES)
    for fam, values in fitted.items():
        for name in LUT_FEATURES:
            assert coef.array[fam][name] == pytest.approx(values[name], rel=1e-5, abs=1e-6), (fam, name)


@pytest.mark.parametrize("name", known_devices())
def test_every_device_has_an_engine_calibration(name: str) -> None:
    fam = load_device(name).synth_family
    assert set(LUT_FEATURES) <= set(load_coefficients().array_for(fam))


def test_uncalibrated_family_is_one_clear_error() -> None:
    with pytest.raises(UserError, match=r"no engine calibration for Yosys family 'xc6s' \(calibrated: xc7"):
        load_coefficients().array_for("xc6s")


def test_model_meets_targets_on_every_grid_point() -> None:
    coef = load_coefficients()
    for r in read_table():
        res = engine_resources(r.engine, r.synth_family, coef)
        point = (r.synth_family, r.name)
        assert res.dsp == r.dsp == r.engine.dsp_slices, point
        assert r.bram36 == 0.0, point
        assert res.ff == r.ff, point  # every fabric register counted, nothing absorbed
        assert abs(res.lut - r.lut) <= 0.15 * r.lut, point


@pytest.mark.parametrize("fam", sorted(SYNTH_FAMILIES))
def test_engine_resources_are_additive_over_sub_arrays(fam: str) -> None:
    coef = load_coefficients()
    dsp = SYNTH_FAMILIES[fam]
    both = engine_resources(EngineConfig(8, 6, 2, 8, 4, 8, 32, dsp=dsp), fam, coef)
    fix = engine_resources(EngineConfig(8, 6, 0, 8, 4, 8, 32, dsp=dsp), fam, coef)
    pot = engine_resources(EngineConfig(8, 0, 2, 8, 4, 8, 32, dsp=dsp), fam, coef)
    assert both.dsp == fix.dsp + pot.dsp
    assert both.ff == pytest.approx(fix.ff + pot.ff)
    assert both.lut == pytest.approx(fix.lut + pot.lut)
    assert pot.dsp == 0


def test_coefficients_file_records_yosys_version() -> None:
    raw = json.loads(COEFFICIENTS_PATH.read_text())
    assert raw["yosys_version"].startswith("0.70")
    for fam in SYNTH_FAMILIES:
        assert set(LUT_FEATURES) <= set(raw["array"][fam])
    assert TABLE_PATH.exists()


def test_calibrate_cli_rejects_bad_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


@pytest.mark.slow
@pytest.mark.parametrize(("depth", "width"), [(128, 8), (1024, 28)])
def test_resynthesised_bank_matches_model_and_table(depth: int, width: int) -> None:
    """One LUT RAM bank and one block RAM bank, synthesised again with the pinned Yosys."""
    row = memory_row(("xcup", depth, width))
    assert row in read_memory_table()
    mem = bank_memory(depth, width, "xcup")
    assert (mem.bram36, mem.lutram_primitives) == (row.bram36, row.lutram_primitives)
    assert (row.lutram_primitives > 0) == (depth <= 128)


def test_nonlinear_table_covers_its_grid_and_the_coefficients_are_its_fit() -> None:
    rows = read_nonlinear_table()
    assert [r.point for r in rows] == nonlinear_grid()
    assert {r.variant for r in rows} == set(VARIANTS)
    assert {r.yosys_version for r in rows} == {load_coefficients().yosys_version}
    fit = fit_nonlinear(rows)
    assert set(fit) == set(VARIANTS)
    assert fit == load_coefficients().nonlinear
    raw = json.loads(COEFFICIENTS_PATH.read_text())
    for variant in VARIANTS:  # one section per variant, every family and kind, the variant's features
        section = raw[nonlinear_section(variant)]
        assert section == fit[variant]
        assert set(section) == set(SYNTH_FAMILIES)
        for kinds in section.values():
            assert set(kinds) == {"softmax", "layernorm", "gelu"}
            for parts in kinds.values():
                assert set(parts) == {"lut", "ff"}
                assert all(set(c) == set(unit_feature_names(variant)) for c in parts.values())


def test_poly_coefficients_are_the_fit_of_the_poly_rows_alone() -> None:
    """The shift rows change nothing of the poly fit (each variant is fitted on its own lines)."""
    rows = read_nonlinear_table()
    poly = [r for r in rows if r.variant == "poly"]
    assert len(poly) == len(rows) // 2
    assert fit_nonlinear(poly) == {"poly": load_coefficients().nonlinear["poly"]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_nonlinear_units_meet_targets_on_every_grid_point(variant: str) -> None:
    """Fitted fabric + modelled row buffers vs Yosys: DSP and BRAM exact, FF 5 %, LUT 15 % on
    every point of the variant, fitted and held out of the fit (3 lanes, 12 bits, 64-word rows)."""
    rows = [r for r in read_nonlinear_table() if r.variant == variant]
    assert len(rows) == 42 and sum(map(is_holdout, rows)) == 9
    for row in rows:
        p = nonlinear_point(row)
        assert p.dsp_model == p.dsp_yosys and p.bram_model == p.bram_yosys, p
        assert p.ff_rel_err <= 0.05 and p.lut_rel_err <= 0.15, p


@pytest.mark.parametrize("fam", sorted(SYNTH_FAMILIES))
@pytest.mark.parametrize("kind", ["softmax", "layernorm", "gelu"])
def test_shift_unit_is_priced_from_its_own_fit_with_no_dsp(fam: str, kind: str) -> None:
    coef = load_coefficients()
    log2_rows = 0 if kind == "gelu" else 8
    poly = unit_resources(kind, fam, coef, 2, log2_rows)
    shift = unit_resources(kind, fam, coef, 2, log2_rows, NONLINEAR_BITS, "shift")
    assert poly == unit_resources(kind, fam, coef, 2, log2_rows, NONLINEAR_BITS, "poly")
    assert poly.dsp == 2 * lane_dsp_slices(kind, NONLINEAR_BITS, log2_rows, fam) > 0
    assert shift.dsp == 0 and shift.lut > 0 and shift.ff > 0
    assert (shift.lut, shift.ff) != (poly.lut, poly.ff)


def test_merged_rows_keep_the_grid_order() -> None:
    rows = read_nonlinear_table()
    old = [r for r in rows if r.variant == "poly"]
    new = [r for r in rows if r.variant != "poly"][::-1]
    assert merge_nonlinear_rows(old, new) == rows
    assert merge_nonlinear_rows(rows, rows[:3]) == rows


def test_calibrate_missing_needs_nonlinear(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--missing"]) == 2
    assert capsys.readouterr().err.strip() == "error: --missing needs --nonlinear"


def test_uncalibrated_nonlinear_family_is_one_clear_error() -> None:
    with pytest.raises(
        UserError, match=r"no softmax unit calibration \(poly kernels\) for Yosys family 'xc6s'"
    ):
        load_coefficients().nonlinear_for("xc6s", "softmax")
    with pytest.raises(
        UserError, match=r"no gelu unit calibration \(exact kernels\) for Yosys family 'xcup'"
    ):
        load_coefficients().nonlinear_for("xcup", "gelu", "exact")


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_resynthesised_nonlinear_unit_matches_the_table(variant: str) -> None:
    """One unit synthesised again with the pinned Yosys gives the committed line."""
    point = ("xcup", "gelu", variant, 1, 8, 0)
    row = nonlinear_row(point)
    committed = next(r for r in read_nonlinear_table() if r.point == point)
    assert (row.lut, row.ff, row.dsp, row.bram36) == (
        committed.lut,
        committed.ff,
        committed.dsp,
        committed.bram36,
    )


def test_controller_coefficients_are_the_fit_of_the_committed_table() -> None:
    from hwmodel.calibration.tables import (
        CONTROLLER_GRID,
        CONTROLLER_HOLDOUT,
        fit_controller,
        parse_spec,
        read_controller_table,
        spec_text,
    )
    from hwmodel.cost.controller import controller_register_bits

    rows = read_controller_table()
    assert {r.synth_family for r in rows} == {"xc7", "xcu", "xcup"}
    assert {r.spec for r in rows} == {spec_text(s) for s in CONTROLLER_GRID + CONTROLLER_HOLDOUT}
    assert {r.yosys_version for r in rows} == {load_coefficients().yosys_version}
    assert fit_controller(rows) == load_coefficients().controller
    for r in rows:  # structural: FF exact, no DSP, no block RAM
        assert r.ff == controller_register_bits(parse_spec(r.spec)) and r.dsp == 0 and r.bram36 == 0


def test_vendor_ip_figures_carry_their_source() -> None:
    raw = json.loads(COEFFICIENTS_PATH.read_text())
    assert "system" not in raw
    vendor = raw["vendor_ip"]
    figures = {k: v for k, v in vendor.items() if isinstance(v, dict)}
    assert set(figures) == {"lut", "ff", "bram36", "dsp", "dram_latency_ns"}
    cited = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+")
    for key, fig in figures.items():
        # every figure is sourced: no prior left
        assert isinstance(fig["value"], int | float) and len(fig["source"]) > 40
        assert "UNSOURCED" not in fig["source"] and "prior" not in fig["source"].lower(), key
    assert "UNSOURCED" not in COEFFICIENTS_PATH.read_text()
    # the DRAM latency cites the measurement (repository, commit, file) and becomes whole cycles of
    # the accelerator's clock, rounded up (214 ns: 21.4 cycles at 100 MHz, 42.8 at 200, 64.2 at 300)
    assert cited.search(vendor["dram_latency_ns"]["source"])
    coef = load_coefficients()
    assert [coef.dram_latency_cycles(f) for f in (100.0, 200.0, 300.0, 250.0)] == [22, 43, 65, 54]
    # each resource figure is the sum of the cited parts, each naming a report and a netlist at a
    # commit of a public repository
    for part in vendor["parts"]:
        assert cited.fullmatch(part["report"]) and part["report"].endswith("_utilization_synth.rpt")
        assert cited.fullmatch(part["netlist"]) and part["netlist"].endswith("_sim_netlist.v")
    for key in ("lut", "ff", "bram36", "dsp"):
        assert figures[key]["value"] == sum(part[key] for part in vendor["parts"])
