"""``python -m codesign.report runs/<study> [--trial N] [--json]``.

Prints the Pareto table of a finished run and regenerates its plots; ``--trial N`` prints the
per-layer hardware breakdown of the exported design N (from its accelerator.json).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codesign.errors import UserError
from codesign.objectives import PROXY_LABELS
from hwmodel.cli import OneLineParser, run_main


def read_records(path: Path) -> list[dict[str, Any]]:
    from codesign.results import read_csv

    if not path.is_file():
        raise UserError(f"{path} not found (is this a run folder of codesign.search?)")
    return list(read_csv(path))


def _f(v: Any, fmt: str) -> str:
    if v in (None, ""):
        return "-"
    return format(float(v), fmt)


def format_pareto(records: Sequence[dict[str, Any]], objectives: Sequence[str]) -> str:
    """Fixed-width table of Pareto designs (rows of pareto.csv)."""
    head = (
        f"{'trial':>5} {'proxy':>9} {'top-1 %':>8} {'FPS':>9} {'ms':>8} {'res.use':>7} {'DSP':>5} {'LUT':>7} "
        f"{'BRAM':>6} {'array R×C(pot)':>15} {'MHz':>5}  precision (per layer × count)"
    )
    lines = [head, "-" * len(head)]
    for r in sorted(records, key=lambda rec: -float(rec.get("fps") or 0)):
        array = f"{r['rows']}×{r['cols']}({r['pot_cols']})"
        tag = f"  [{r['baseline']}]" if r.get("baseline") else ""
        lines.append(
            f"{r['trial']:>5} {_f(r.get('accuracy_proxy'), '9.4f')} {_f(r.get('accuracy_real'), '8.2f')} "
            f"{_f(r['fps'], '9.1f')} {_f(r['latency_ms'], '8.3f')} {_f(r['resource_use'], '7.3f')} "
            f"{r['dsp']:>5} {r['lut']:>7} {_f(r['bram36'], '6.1f')} {array:>15} {_f(r['freq_mhz'], '5.0f')}  "
            f"{r['precision']}{tag}"
        )
    if not records:
        lines.append("(no feasible design)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from hwmodel.report import format_table

    p = OneLineParser(prog="python -m codesign.report", description=__doc__.splitlines()[0])
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
    objectives = tuple(info["objectives"])
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
    records = read_records(run_dir / "pareto.csv")
    if not args.no_plots:
        from codesign.plots import hypervolume_data, pareto_data, render_hypervolume, render_pareto

        all_records = read_records(run_dir / "trials.csv")
        title = f"{info['study']}: {info['model']} on {info['device']}"
        render_pareto(
            pareto_data(
                all_records,
                objectives,
                info.get("fps_target"),
                PROXY_LABELS.get(info.get("proxy_kind", ""), "proxy"),
            ),
            run_dir / "pareto.png",
            title,
        )
        hist = [(int(r["trial"]), float(r["hypervolume"])) for r in read_records(run_dir / "hypervolume.csv")]
        render_hypervolume(
            hypervolume_data(hist, float(info["baseline_hypervolume"])), run_dir / "hypervolume.png", title
        )
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_pareto(records, objectives))
        print(
            f"\n{info['trials']} trials, {info['feasible']} feasible, {info['pareto']} Pareto; hypervolume "
            f"{info['hypervolume']:.4f} (baselines only {info['baseline_hypervolume']:.4f}); "
            f"FPS target {info['fps_target']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog="codesign.report"))
