"""SCALE-Sim v3 as an independent GEMM cycle oracle (optional; runs in a separate venv).

SCALE-Sim needs numpy < 2.4, so it is not a project dependency: install it in its own venv
(``python3 -m venv /tmp/scalesim-venv && /tmp/scalesim-venv/bin/pip install scalesim
"numpy<2.4"``) and point :func:`scalesim_gemm_cycles` at that interpreter. This module runs
itself under that interpreter (``python scalesim_oracle.py cases.json``; it imports nothing from
the project there) and returns SCALE-Sim's total compute cycles per case.

Relation to our engine (weight-stationary, SCALE-Sim's ``ws``: R rows over K, C columns over N):
SCALE-Sim runs the ⌈K/R⌉·⌈N/C⌉ folds one after another, each ``M + 2R + C − 2`` cycles (weight
load R, the M rows of A, the skews R − 1 and C − 1), and reports the 0-based index of the last
cycle. Our unpacked engine (one token per slice, one cascade chain of R) takes the same fold
skeleton plus a 5-stage slice/result pipeline, and overlaps each fold with the next one's weight
load: :func:`ws_relation` gives our count from SCALE-Sim's.
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
Dataflow : {dataflow}
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
            cfg = _CFG.format(rows=case["rows"], cols=case["cols"], dataflow=case.get("dataflow", "ws"))
            (d / "s.cfg").write_text(cfg)
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


def ws_relation(scalesim_cycles: int, m: int, n: int, k: int, rows: int, cols: int) -> int:
    """Our unpacked engine's cycles for an untiled GEMM, from SCALE-Sim's ``ws`` count: + 1 (its
    0-based index), + 5 (slice and result pipeline), − the overlap of every fold after the first
    (SCALE-Sim's ``M + 2R + C − 2`` against our fold period ``max(M, 2R − 1)``)."""
    folds = -(-k // rows) * -(-n // cols)
    overlap = (m + 2 * rows + cols - 2) - max(m, 2 * rows - 1)
    return scalesim_cycles + 1 + 5 - (folds - 1) * overlap


def scalesim_gemm_cycles(python: str, cases: list[dict[str, int]], timeout_s: float = 600) -> list[int]:
    """SCALE-Sim cycles of GEMMs ``{m, n, k, rows, cols[, dataflow]}`` (``ws`` by default) run with
    ``python``."""
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
