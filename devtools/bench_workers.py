"""``python -m devtools.bench_workers``: trials/s of one study with 1 and 2 worker processes.

    python -m devtools.bench_workers            # journal file, SQLite and a throwaway PostgreSQL
    python -m devtools.bench_workers --json --trials 200 --storages journal,postgresql

Each measurement: a fresh storage, the study created by this process (as ``codesign.search``
does), N spawned workers (one torch thread each) that import, load the study and then wait on a
barrier; the clock starts when the barrier opens, so process start-up is not timed. trials/s =
COMPLETE trials / (last trial completion − barrier release). The trials are hardware-only
(``--hw-only W8A8``: fixed quantization, accelerator search) on the DeiT-S/ZCU102 study, the
same objective, sampler (TPE, constant liar) and storage code as ``python -m codesign.search``.
The PostgreSQL cluster is local, on loopback, with ``fsync=off`` (see :mod:`devtools.pgcluster`).
"""

from __future__ import annotations

import datetime
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from codesign.errors import UserError
from codesign.quant import QuantConfig
from codesign.search import SearchRun, WorkerPool
from codesign.search.logs import quiet_optuna
from codesign.study import REPO_ROOT, Study, load_study
from devtools.pgcluster import PgCluster, PgUnavailable, start_cluster
from hwmodel.base.cli import command_parser, positive_int, run_main

COMMAND = "devtools.bench_workers"
STORAGES = ("journal", "sqlite", "postgresql")
STUDY = REPO_ROOT / "studies" / "deit_small_zcu102.yaml"


def benchmark_study(trials: int) -> Study:
    """The benchmarked search: hardware-only DeiT-S trials (W8A8 fixed) at ≥ 5 FPS."""
    study = load_study(STUDY).with_model_name("deit_small_patch16_224")
    return study.with_overrides(fps=5.0, trials=trials, fixed_quant=QuantConfig.uniform("W8A8"))


def measure(storage_url: str, workers: int, trials: int) -> dict[str, Any]:
    """One measurement on a fresh storage: trials/s of ``workers`` processes after start-up."""
    study = benchmark_study(trials)
    run = SearchRun.open(study, storage_url, parallel=True)
    barrier = mp.get_context("spawn").Barrier(workers + 1)
    pool = WorkerPool(workers, barrier=barrier, method="spawn")  # fresh processes, timed after start-up
    t_start = time.perf_counter()
    try:
        pool.send(run, trials, None)
        barrier.wait(timeout=300)
        go = datetime.datetime.now()
        t_go = time.perf_counter()
        problems = pool.join()
    finally:
        pool.stop()
    if problems:
        raise RuntimeError("; ".join(problems))
    done = optuna.load_study(study_name=study.name, storage=run.storage).get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,)
    )
    ends = [t.datetime_complete for t in done if t.datetime_complete is not None]
    span = (max(ends) - go).total_seconds()
    return {
        "workers": workers,
        "complete": len(done),
        "seconds": span,
        "startup_s": t_go - t_start,
        "trials_per_s": len(done) / span,
        "per_worker": sorted(
            {
                w: sum(t.user_attrs.get("worker") == w for t in done)
                for w in {t.user_attrs.get("worker") for t in done}
            }.values()
        ),
    }


def _burn(n: int) -> float:
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t


def cpu_scaling(n: int = 8_000_000) -> float:
    """Aggregate speed of 2 processes of pure Python work over 1 right now: the ceiling of any
    2-worker speedup on this machine at this moment (other load on the cores lowers it)."""
    one = _burn(n)
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_burn, [1, 1])  # start-up (imports) not timed
        t = time.perf_counter()
        pool.map(_burn, [n, n])
        two = time.perf_counter() - t
    return 2 * one / two


def storage_url(kind: str, folder: Path, tag: str, cluster: PgCluster | None) -> str:
    if kind == "journal":
        return str(folder / f"{tag}.log")
    if kind == "sqlite":
        return f"sqlite:///{folder / f'{tag}.db'}"
    assert cluster is not None
    return cluster.create_database(tag)


def run(storages: Sequence[str], trials: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"trials": trials, "cpus": os.cpu_count(), "storages": {}, "skipped": {}}
    out["cpu_scaling_before"] = cpu_scaling()
    cluster: PgCluster | None = None
    with tempfile.TemporaryDirectory(prefix="codesign-bench-") as tmp:
        folder = Path(tmp)
        try:
            for kind in storages:
                if kind == "postgresql" and cluster is None:
                    try:
                        cluster = start_cluster()
                    except PgUnavailable as exc:
                        out["skipped"][kind] = str(exc)
                        continue
                rates: dict[str, Any] = {}
                for n in (1, 2):
                    best: dict[str, Any] | None = None
                    for r in range(repeats):
                        m = measure(storage_url(kind, folder, f"b_{kind}_{n}_{r}", cluster), n, trials)
                        if best is None or m["trials_per_s"] > best["trials_per_s"]:
                            best = m
                    rates[str(n)] = best
                rates["speedup"] = rates["2"]["trials_per_s"] / rates["1"]["trials_per_s"]
                out["storages"][kind] = rates
        finally:
            if cluster is not None:
                cluster.stop()
    out["cpu_scaling_after"] = cpu_scaling()
    measured = out["storages"]
    if measured:
        best_kind = max(measured, key=lambda k: measured[k]["speedup"])
        out["best_storage"] = best_kind
        out["trials_per_s_1"] = measured[best_kind]["1"]["trials_per_s"]
        out["trials_per_s_2"] = measured[best_kind]["2"]["trials_per_s"]
        out["speedup"] = measured[best_kind]["speedup"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument(
        "--trials", type=positive_int, default=120, help="COMPLETE trials per measurement (default 120)"
    )
    p.add_argument("--repeats", type=positive_int, default=1, help="measurements per point; the best is kept")
    p.add_argument(
        "--storages",
        default=",".join(STORAGES),
        help=f"comma-separated subset of {','.join(STORAGES)} (default: all)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.storages.split(",") if k.strip()]
    bad = [k for k in kinds if k not in STORAGES]
    if bad:
        raise UserError(f"--storages: unknown {', '.join(bad)} (allowed: {', '.join(STORAGES)})")
    quiet_optuna()
    res = run(kinds, a.trials, a.repeats)
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"{'storage':<11} {'1 worker':>10} {'2 workers':>10} {'speedup':>8}   (trials/s, {a.trials} trials)"
    )
    for kind, r in res["storages"].items():
        one, two = r["1"]["trials_per_s"], r["2"]["trials_per_s"]
        print(f"{kind:<11} {one:>10.2f} {two:>10.2f} {r['speedup']:>7.2f}x")
    print(
        f"2-process CPU ceiling: {res['cpu_scaling_before']:.2f}x before, "
        f"{res['cpu_scaling_after']:.2f}x after "
        "(pure Python work; other load on the cores lowers it)"
    )
    for kind, why in res["skipped"].items():
        print(f"{kind:<11} skipped: {why}")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)


if __name__ == "__main__":
    sys.exit(entry())
