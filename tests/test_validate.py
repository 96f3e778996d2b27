"""``python -m hwmodel.validate``: JSON keys, figures, bad input."""

from __future__ import annotations

import json

import pytest

from hwmodel.validate import main

KEYS = {
    "cycle_cases",
    "cycle_mismatches",
    "resource_points",
    "dsp_max_abs_err",
    "ff_max_rel_err",
    "bram_max_abs_err",
    "lut_max_rel_err",
    "memory_points",
    "memory_mapping_mismatches",
}


def test_validate_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--cases", "8", "--seed", "3", "--efficiency"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS
    assert out["cycle_cases"] == 8
    assert out["cycle_mismatches"] == 0
    assert out["output_mismatches"] == 0
    assert out["resource_points"] >= 60
    assert out["dsp_max_abs_err"] == 0
    assert out["bram_max_abs_err"] == 0
    assert out["ff_max_rel_err"] <= 0.05
    assert out["lut_max_rel_err"] <= 0.15
    assert set(out["families"]) == {"xc7", "xcu", "xcup"}
    for fam in out["families"].values():
        assert fam["points"] >= 20 and fam["dsp_max_abs_err"] == 0
        assert fam["ff_max_rel_err"] <= 0.05 and fam["lut_max_rel_err"] <= 0.15
    eff = out["efficiency"]
    assert len(eff) == out["resource_points"]
    # the bar for the INT8 engine: ≥ 16×16 W8A8 on UltraScale+, ≤ 20 LUT, ≤ 40 FF per MAC/cycle
    w8a8 = [
        r for r in eff
        if r["synth_family"] == "xcup" and r["variant"].startswith("W8A8 x2 ") and r["macs_per_cycle"] >= 512
    ]  # fmt: skip
    assert w8a8 and all(r["lut_per_mac_yosys"] <= 20 and r["ff_per_mac_yosys"] <= 40 for r in w8a8)
    # buffer banks: the model builds each in block RAM or LUT RAM exactly as Yosys does
    assert out["memory_points"] >= 60 and out["memory_mapping_mismatches"] == 0
    assert 0 < out["lutram_banks"] < out["memory_points"]
    # non-linear units, poly ("nonlinear_…") and shift-and-add ("nonlinear_shift_…"): bit- and
    # cycle-exact in simulation; DSP/BRAM exact, FF 5 %, LUT 15 % vs Yosys, held-out points too
    counted = 0
    for pre in ("nonlinear", "nonlinear_shift"):
        assert out[f"{pre}_vectors"] >= 300
        assert out[f"{pre}_cycle_mismatches"] == out[f"{pre}_output_mismatches"] == 0
        assert out[f"{pre}_points"] >= 33 and out[f"{pre}_holdout_points"] >= 9
        counted += out[f"{pre}_points"] + out[f"{pre}_holdout_points"]
        assert out[f"{pre}_dsp_max_abs_err"] == 0 and out[f"{pre}_bram_max_abs_err"] == 0
        assert out[f"{pre}_ff_max_rel_err"] <= 0.05 and out[f"{pre}_lut_max_rel_err"] <= 0.15
        assert out[f"{pre}_holdout_dsp_max_abs_err"] == 0
        assert out[f"{pre}_holdout_ff_max_rel_err"] <= 0.05 and out[f"{pre}_holdout_lut_max_rel_err"] <= 0.15
    assert counted == len(out["nonlinear"])
    assert sum(" shift " in p["name"] for p in out["nonlinear"]) == len(out["nonlinear"]) // 2
    worst = out["nonlinear_families"]
    assert set(worst) == {"poly", "shift"}
    for variant, families in worst.items():
        assert set(families) == {"xc7", "xcu", "xcup"}
        for fam, parts in families.items():
            assert set(parts) == {"fitted", "holdout"}, (variant, fam)
            assert parts["fitted"]["points"] == 11 and parts["holdout"]["points"] == 3
            for e in parts.values():
                assert (
                    e["dsp_max_abs_err"] == 0 and e["ff_max_rel_err"] <= 0.05 and e["lut_max_rel_err"] <= 0.15
                )
    pre_of = {"poly": "nonlinear", "shift": "nonlinear_shift"}
    for variant, families in worst.items():  # the per-family figures make up the summary's worst
        for part, key in (("fitted", ""), ("holdout", "holdout_")):
            top = max(f[part]["lut_max_rel_err"] for f in families.values())
            assert top == out[f"{pre_of[variant]}_{key}lut_max_rel_err"], (variant, part)
    # tile controller: cycle-exact vs the model, addresses vs the reference; FF exact, LUT 15 %
    assert out["controller_cases"] == 40 and out["controller_overlapped_cases"] == 30
    assert out["controller_chain_cases"] == 30 and out["controller_deferred_chains"] >= 20
    assert out["controller_cycle_mismatches"] == out["controller_order_mismatches"] == 0
    assert out["controller_address_mismatches"] == 0 and out["controller_address_checks"] > 0
    assert out["controller_points"] >= 24 and out["controller_holdout_points"] >= 6
    assert out["controller_points"] + out["controller_holdout_points"] == len(out["controller"])
    assert out["controller_dsp_max_abs_err"] == 0 and out["controller_bram_max_abs_err"] == 0
    assert out["controller_ff_max_rel_err"] == 0 and out["controller_lut_max_rel_err"] <= 0.15
    assert out["controller_holdout_ff_max_rel_err"] == 0


def test_validate_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cases", "2", "--controller-cases", "4", "--chain-cases", "3"]) == 0
    out = capsys.readouterr().out
    assert "cycle cross-check: 2 cases, 0 cycle mismatches" in out
    assert "max errors:" in out and "xcup: 21 engines" in out
    assert "tile controller: 4 random GEMMs simulated (3 with a non-linear op beside them) and 3 pairs" in out
    assert "the next GEMM), 0 cycle mismatches vs the model, 0 tile-order and 0 address mismatches" in out
    for variant in ("poly", "shift"):
        assert (
            f"non-linear units ({variant}): 309 rows simulated, 0 cycle mismatches, 0 output mismatches"
            in out
        )
        assert f"non-linear max errors ({variant}): DSP 0 abs" in out
    assert "gelu shift x3 12-bit rows 2^0" in out and "shift xcup  fitted (11)" in out
    assert main(["--cases", "1", "--efficiency"]) == 0
    table = capsys.readouterr().out
    assert "LUT/MAC y/m" in table and "r16_f16w8_p0w4_a8_acc28_x2_e2" in table


@pytest.mark.parametrize("argv", [["--cases", "0"], ["--cases", "x"]])
def test_validate_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # a usage error (--cases x) in the commands' one format; main()'s own checks still print "error: …"
    assert len(err) == 1 and err[0].startswith(("error:", "hwmodel.validate: error:"))
