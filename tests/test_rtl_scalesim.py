"""SCALE-Sim v3 as an independent cycle oracle (needs a separate venv with scalesim)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hwmodel.arch.cycles import gemm_compute_cycles
from hwmodel.arch.engine import EngineConfig
from hwmodel.rtl.scalesim_oracle import scalesim_gemm_cycles, ws_relation

PYTHON = os.environ.get("SCALESIM_PYTHON", "/tmp/scalesim-venv/bin/python")


@pytest.mark.skipif(
    not Path(PYTHON).exists(),
    reason=f"no SCALE-Sim venv at {PYTHON} (set SCALESIM_PYTHON; scalesim needs numpy < 2.4)",
)
def test_scalesim_ws_cycles_relate_to_the_analytic_model() -> None:
    cases = [
        {"m": 5, "n": 3, "k": 4, "rows": 4, "cols": 3},  # one fold: SCALE-Sim + 6
        {"m": 20, "n": 6, "k": 8, "rows": 4, "cols": 3},  # 4 folds, the stream bounds the period
        {"m": 3, "n": 9, "k": 20, "rows": 8, "cols": 2},  # 15 folds, the weight load bounds it
    ]
    got = scalesim_gemm_cycles(PYTHON, cases)
    assert got[0] == 5 + 2 * 4 + 3 - 2 - 1
    for c, g in zip(cases, got, strict=True):
        eng = EngineConfig(c["rows"], c["cols"], 0, 8, 2, 8, 32, packing=1)
        ana = gemm_compute_cycles(c["m"], c["n"], c["k"], eng, 0.0, c["m"], c["n"], c["k"])
        assert ws_relation(g, c["m"], c["n"], c["k"], c["rows"], c["cols"]) == ana
