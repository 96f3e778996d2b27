"""``python -m codesign.report runs/<study> [--trial N] [--json]``.

Prints the Pareto table of a finished run (proxy and real top-1 accuracy) and regenerates its
plots (pareto.png, pareto.html, hypervolume.png); ``--trial N`` prints the
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
from hwmodel.yamlio import read_json

COMMAND = "codesign.report"
#: What the report prints from a run's summary.json.
SUMMARY_KEYS = frozenset(
    {"trials", "feasible", "pareto", "hypervolume", "baseline_hypervolume", "fps_target"}
)


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("run_dir", help="a run folder, e.g. runs/default")
    p.add_argument("--trial", type=int, help="per-layer breakdown of this exported design")
    p.add_argument("--json", action="store_true", help="print the run summary (or the design) as JSON")
    p.add_argument("--no-plots", action="store_true", help="do not regenerate the plots")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise UserError(f"{summary_path} not found (is {run_dir} a run folder of codesign.search?)")
    info = read_json(summary_path, "run summary")
    if not isinstance(info, dict) or not set(info) >= SUMMARY_KEYS:
        missing = sorted(SUMMARY_KEYS - set(info)) if isinstance(info, dict) else sorted(SUMMARY_KEYS)
        raise UserError(f"{summary_path}: not a codesign.search summary (missing {', '.join(missing)})")
    if args.trial is not None:
        doc_path = run_dir / "designs" / str(args.trial) / "accelerator.json"
        if not doc_path.is_file():
            avail = ", ".join(str(n) for n in info.get("pareto_trials", [])) or "none"
            raise UserError(
                f"trial {args.trial} has no exported design in {run_dir}/designs (Pareto trials: {avail})"
            )
        doc = read_json(doc_path, "accelerator")
        if not isinstance(doc, dict) or not {"predicted", "device"} <= set(doc):
            raise UserError(f"{doc_path}: not an accelerator.json that codesign.search exports")
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(format_table(doc["predicted"], doc["device"]))
        return 0
    pareto = read_rows(run_dir / "pareto.csv")
    trials = read_rows(run_dir / "trials.csv")
    if not trials:
        raise UserError(
            f"{run_dir / 'trials.csv'} has no trials: nothing to report (run codesign.search again)"
        )
    if not args.no_plots:
        try:
            render_run_plots(run_dir, trials, read_history(run_dir / "hypervolume.csv"), info)
        except OSError as exc:
            raise UserError(
                f"cannot write the plots into {run_dir} ({exc.strerror or exc}); use --no-plots"
            ) from exc
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
