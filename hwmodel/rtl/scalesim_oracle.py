"""SCALE-Sim v3 as an independent GEMM cycle oracle (optional; runs in a separate venv).

SCALE-Sim needs numpy < 2.4, so it is not a project dependency: install it in its own venv
(``python3 -m venv /tmp/scalesim-venv && /tmp/scalesim-venv/bin/pip install scalesim
"numpy<2.4"``) and point :func:`scalesim_gemm_cycles` at that interpreter. This module runs
itself under that interpreter (``python scalesim_oracle.py cases.json``; it imports nothing from
the project there) and returns SCALE-Sim's total compute cycles per case.

Convention offset: for the output-stationary dataflow SCALE-Sim reports the 0-based index of the
last cycle, i.e. ``hwmodel.cycles.gemm_compute_cycles(M, N, K, R, C, 0, 0.0, M, N, K) − 1`` for an
untiled GEMM (one on-chip tile, folds back to back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CFG = """[general]
run_name = oracle

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 65536
FilterSramSzkB : 65536
OfmapSramSzkB : 65536
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Bandwidth : 100000
Dataflow : os
ReadRequestBuffer : 100000
WriteRequestBuffer : 100000

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : USER
Bandwidth : 100000
UseRamulatorTrace : False
"""


def _run_inside(cases: list[dict[str, int]]) -> list[int]:  # pragma: no cover - scalesim venv
    from scalesim.scale_sim import scalesim  # type: ignore[import-not-found]

    out = []
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "s.cfg").write_text(_CFG.format(rows=case["rows"], cols=case["cols"]))
            (d / "t.csv").write_text(f"Layer, M, N, K,\nl0, {case['m']}, {case['n']}, {case['k']},\n")
            (d / "l.csv").write_text("Layer name, unused,\n")  # custom layouts are off
            sim = scalesim(
                save_disk_space=True,
                verbose=False,
                config=str(d / "s.cfg"),
                topology=str(d / "t.csv"),
                layout=str(d / "l.csv"),
                input_type_gemm=True,
            )
            sim.run_scale(top_path=str(d))
            # (scalesim 3's get_total_cycles() indexes a bound method; read the layer report)
            layer = sim.runner.single_layer_sim_object_list[0]
            items = layer.get_compute_report_items()  # overall, total, stall, ...
            out.append(int(items[1]) - int(items[2]))
    return out


def scalesim_gemm_cycles(python: str, cases: list[dict[str, int]], timeout_s: float = 600) -> list[int]:
    """SCALE-Sim os-dataflow cycles of GEMMs ``{m, n, k, rows, cols}`` run with ``python``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.json"
        path.write_text(json.dumps(cases))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        res = subprocess.run(
            [python, __file__, str(path)],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=tmp,
            env=env,
        )
    return [int(v) for v in json.loads(res.stdout.strip().splitlines()[-1])]


if __name__ == "__main__":  # pragma: no cover - runs under the scalesim venv
    cases_in = json.loads(Path(sys.argv[1]).read_text())
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        result = _run_inside(cases_in)
    print(json.dumps(result))
