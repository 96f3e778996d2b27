"""SCALE-Sim v3 as an independent cycle oracle (needs a separate venv with scalesim)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hwmodel.cycles import gemm_compute_cycles
from hwmodel.rtl.scalesim_oracle import scalesim_gemm_cycles

PYTHON = os.environ.get("SCALESIM_PYTHON", "/tmp/scalesim-venv/bin/python")


@pytest.mark.skipif(
    not Path(PYTHON).exists(),
    reason=f"no SCALE-Sim venv at {PYTHON} (set SCALESIM_PYTHON; scalesim needs numpy < 2.4)",
)
def test_scalesim_os_cycles_are_analytic_minus_one() -> None:
    cases = [
        {"m": 5, "n": 6, "k": 7, "rows": 2, "cols": 3},
        {"m": 16, "n": 16, "k": 20, "rows": 4, "cols": 4},
        {"m": 33, "n": 9, "k": 5, "rows": 8, "cols": 2},
    ]
    got = scalesim_gemm_cycles(PYTHON, cases)
    for c, g in zip(cases, got, strict=True):
        ana = gemm_compute_cycles(
            c["m"], c["n"], c["k"], c["rows"], c["cols"], 0, 0.0, c["m"], c["n"], c["k"]
        )
        assert g == ana - 1
