"""``python -m codesign.report runs/<study> [--trial N] [--json]``.

Prints the Pareto table of a finished run and regenerates its plots; ``--trial N`` prints the
per-layer hardware breakdown of the exported design N (from its accelerator.json).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from codesign.errors import UserError
from codesign.results import format_pareto, read_history, read_rows
from codesign.results.plots import render_run_plots
from hwmodel.cli import command_parser, run_main
from hwmodel.report import format_table

COMMAND = "codesign.report"


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("run_dir", help="a run folder, e.g. runs/default")
    p.add_argument("--trial", type=int, help="per-layer breakdown of this exported design")
    p.add_argument("--json", action="store_true", help="print the run summary (or the design) as JSON")
    p.add_argument("--no-plots", action="store_true", help="do not regenerate the plots")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{summary_path} not found (is {run_dir} a run folder of codesign.search?)")
    info = json.loads(summary_path.read_text(encoding="utf-8"))
    if args.trial is not None:
        doc_path = run_dir / "designs" / str(args.trial) / "accelerator.json"
        if not doc_path.is_file():
            avail = ", ".join(str(n) for n in info.get("pareto_trials", [])) or "none"
            raise UserError(
                f"trial {args.trial} has no exported design in {run_dir}/designs (Pareto trials: {avail})"
            )
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(format_table(doc["predicted"], doc["device"]))
        return 0
    pareto = read_rows(run_dir / "pareto.csv")
    if not args.no_plots:
        render_run_plots(
            run_dir, read_rows(run_dir / "trials.csv"), read_history(run_dir / "hypervolume.csv"), info
        )
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_pareto(pareto))
        print(
            f"\n{info['trials']} trials, {info['feasible']} feasible, {info['pareto']} Pareto; hypervolume "
            f"{info['hypervolume']:.4f} (baselines only {info['baseline_hypervolume']:.4f}); "
            f"FPS target {info['fps_target']}"
        )
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
