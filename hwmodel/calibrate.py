"""``python -m hwmodel.calibrate``: synthesise the calibration grids with the pinned Yosys and refit
``hwmodel/calibration/coefficients.json``.

Default: the engine grid, then the non-linear units and the tile controller; ``--fit-only`` refits
from the committed tables, ``--memories`` synthesises the buffer-bank grid, ``--nonlinear`` and
``--controller`` one part only. The grids, tables and fits are :mod:`hwmodel.calibration.tables`.
"""

from __future__ import annotations

import json
import sys
import time

from hwmodel.base.cli import OneLineParser
from hwmodel.calibration.tables import (
    MEMORY_TABLE_PATH,
    TABLE_PATH,
    calibrate_controller,
    calibrate_nonlinear,
    default_grid,
    fit_engines,
    missing_table,
    read_table,
    run_grid,
    run_memory_grid,
    write_coefficients,
    write_memory_table,
    write_table,
)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m hwmodel.calibrate", description=__doc__)
    ap.add_argument("--jobs", type=int, default=2, help="parallel Yosys runs (default 2)")
    ap.add_argument("--fit-only", action="store_true", help="refit from the committed synth_table.csv")
    ap.add_argument("--memories", action="store_true", help="synthesise the buffer-bank grid instead")
    ap.add_argument("--nonlinear", action="store_true", help="only the non-linear unit grid")
    ap.add_argument(
        "--missing",
        action="store_true",
        help="with --nonlinear: synthesise only the unit grid points nonlinear_table.csv lacks",
    )
    ap.add_argument("--controller", action="store_true", help="only the tile-controller grid")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        print("error: --jobs must be ≥ 1", file=sys.stderr)
        return 2
    if args.missing and not args.nonlinear:
        print("error: --missing needs --nonlinear", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if args.memories:
        mem_rows = run_memory_grid(args.jobs)
        write_memory_table(mem_rows)
        print(f"{len(mem_rows)} buffer banks, {time.perf_counter() - t0:.0f} s → {MEMORY_TABLE_PATH}")
        return 0
    if args.controller:
        rc = calibrate_controller(args.jobs, args.fit_only)
        print(f"{time.perf_counter() - t0:.0f} s")
        return rc
    if args.nonlinear:
        rc = calibrate_nonlinear(args.jobs, args.fit_only, args.missing)
        print(f"{time.perf_counter() - t0:.0f} s")
        return rc
    if args.fit_only:
        if missing_table(TABLE_PATH):
            return 2
        rows = read_table()
    else:
        rows = run_grid(default_grid(), args.jobs)
        write_table(rows)
    versions = {r.yosys_version for r in rows}
    if len(versions) != 1:
        print(f"error: table mixes Yosys versions {sorted(versions)}", file=sys.stderr)
        return 2
    coef = fit_engines(rows)
    write_coefficients(coef, versions.pop(), len(rows))
    print(json.dumps(coef, indent=2))
    print(f"{len(rows)} grid points, {time.perf_counter() - t0:.0f} s")
    rc = calibrate_nonlinear(args.jobs, args.fit_only)
    return rc or calibrate_controller(args.jobs, args.fit_only)


if __name__ == "__main__":
    raise SystemExit(main())
