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
    assert main(["--json", "--cases", "8", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= KEYS
    assert out["cycle_cases"] == 8
    assert out["cycle_mismatches"] == 0
    assert out["output_mismatches"] == 0
    assert out["resource_points"] >= 12
    assert out["dsp_max_abs_err"] == 0
    assert out["bram_max_abs_err"] == 0
    assert out["ff_max_rel_err"] <= 0.05
    assert out["lut_max_rel_err"] <= 0.15
    # buffer banks: the model builds each in block RAM or LUT RAM exactly as Yosys does
    assert out["memory_points"] >= 60 and out["memory_mapping_mismatches"] == 0
    assert 0 < out["lutram_banks"] < out["memory_points"]


def test_validate_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cases", "2"]) == 0
    out = capsys.readouterr().out
    assert "cycle cross-check: 2 cases, 0 cycle mismatches" in out
    assert "max errors:" in out


@pytest.mark.parametrize("argv", [["--cases", "0"], ["--cases", "x"]])
def test_validate_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # a usage error (--cases x) in the commands' one format; main()'s own checks still print "error: …"
    assert len(err) == 1 and err[0].startswith(("error:", "hwmodel.validate: error:"))
