"""``python -m hwmodel.report --model M --device D [--config accel.json] [--json]``.

Prints the per-layer table of one design (op, M, N, K, precision, PoT ratio, tiles, compute vs
memory cycles, bound, PE use, the BRAM36 its tiles' buffers take) and the totals: every layer runs
on the one array, so DSP/LUT/FF are the design's, printed once. Without ``--config`` it reports
the documented default design (:mod:`hwmodel.model.default`). An exported accelerator.json is read as
is: validated against its JSON Schema, priced on the model, device and caps it records
(``--model``/``--device`` override them), and compared with its recorded figures (a ``recorded``
line: reproduced exactly, or what differs).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hwmodel.base.cli import command_parser, run_main
from hwmodel.base.yamlio import read_json
from hwmodel.model.default import default_config
from hwmodel.model.document import (
    DesignFile,
    differences,
    is_design_document,
    load_config,
    read_design,
    recorded_workload,
)
from hwmodel.model.evaluation import UtilisationCaps, evaluate
from hwmodel.target.device import load_device
from hwmodel.target.workload import NAMED_ARCHITECTURES, workload_from_name

DEFAULT_MODEL = "deit_base_patch16_224"
DEFAULT_DEVICE = "zcu102"

#: The per-layer table's ``bound`` of a non-linear op: in series, or beside the GEMM before it.
NONLINEAR_BOUNDS = ("nonlinear", "overlapped")

PUBLISHED_ZCU102_GOPS = {
    "Auto-ViT-Acc (DeiT-B, W8A8+W4A8 mix)": 1181.5,
    "VAQF (DeiT-B, W1A8)": 861.2,
}


def format_table(report: dict[str, Any], device: dict[str, Any]) -> str:
    """The per-layer table and totals as fixed-width text (from ``DesignReport.to_dict()``)."""
    head = (
        f"{'op':<24} {'kind':<10} {'M':>5} {'N':>5} {'K':>5} {'xR':>3} {'prec':>6} {'pot':>5} {'lanes':>5} "
        f"{'tiles Tm×Tn×Tk':>16} {'compute':>10} {'memory':>10} {'bound':>9} {'PE%':>5} {'BRAM36':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in report["layers"]:
        if r["bound"] in NONLINEAR_BOUNDS:  # compute: the unit's busy cycles; then the exposed ones
            lines.append(
                f"{r['name']:<24} {r['kind']:<10} {r['m']:>5} {r['n']:>5} {'':>5} {'':>3} {'':>6} {'':>5} "
                f"{'':>5} {'':>16} {r['compute_cycles']:>10,} {'-':>10} {r['bound']:>9} "
                f"exposed {r['latency_cycles']:,}"
            )
            continue
        prec = f"W{r['weight_bits']}A{r['act_bits']}"
        tiles = f"{r['tm']}×{r['tn']}×{r['tk']}"
        lines.append(
            f"{r['name']:<24} {r['kind']:<10} {r['m']:>5} {r['n']:>5} {r['k']:>5} {r['repeat']:>3} {prec:>6} "
            f"{r['pot_ratio']:>5.2f} {r['lanes'] or '-':>5} {tiles:>16} {r['compute_cycles']:>10,} "
            f"{r['memory_cycles']:>10,} "
            f"{r['bound']:>9} {100 * r['pe_utilisation']:>5.1f} {r['bram36']:>7.1f}"
        )
    res, util = report["resources"], report["utilisation"]
    violations = report["violations"]
    lines += [
        "",
        f"model {report['model']} on {device['name']} ({device['part']}) at {report['freq_mhz']:g} MHz",
        f"MACs/image      {report['macs']:,}",
        f"latency         {report['latency_cycles']:,} cycles = {report['latency_ms']:.3f} ms "
        f"(GEMM {report['gemm_cycles']:,}, non-linear exposed {report['nonlinear_exposed_cycles']:,}; "
        f"the units busy {report['nonlinear_cycles']:,})",
        f"throughput      {report['fps']:.2f} FPS, {report['gops']:.1f} GOP/s",
        f"off-chip        {report['offchip_bytes'] / 1e6:.2f} MB/image",
        f"DSP             {res['dsp']:,} / {device['dsp']:,} ({util['dsp']:.1%})",
        f"LUT             {res['lut']:,} / {device['lut']:,} ({util['lut']:.1%})",
        f"FF              {res['ff']:,} / {device['ff']:,} ({util['ff']:.1%})",
        f"BRAM36          {res['bram36']:g} / {device['bram36']:,} ({util['bram36']:.1%})",
        "feasible        " + ("yes" if not violations else "NO: " + "; ".join(violations)),
        nonlinear_share(report),
    ]
    return "\n".join(lines)


def nonlinear_share(report: dict[str, Any]) -> str:
    """The share of latency and of each resource the non-linear units (softmax, LayerNorm, GELU) take."""
    nl, res = report["nonlinear_resources"], report["resources"]

    def share(part: str) -> str:
        return f"{nl[part]:,} ({nl[part] / res[part]:.1%})" if res[part] else f"{nl[part]:,}"

    latency = report["latency_cycles"]
    cycles = report["nonlinear_exposed_cycles"] / latency if latency else 0.0
    per_kind: dict[str, int] = {}
    for r in report["layers"]:
        if r["bound"] in NONLINEAR_BOUNDS:
            per_kind[r["kind"]] = per_kind.get(r["kind"], 0) + r["latency_cycles"]
    kinds = ", ".join(f"{kind} {c:,}" for kind, c in per_kind.items())
    return (
        f"non-linear      {cycles:.1%} of the latency exposed" + (f" ({kinds})" if kinds else "") + "; "
        f"DSP {share('dsp')}, LUT {share('lut')}, FF {share('ff')}, BRAM36 {share('bram36')}"
    )


def _published_line(gops: float) -> str:
    others = ", ".join(f"{name} {value:g} GOP/s" for name, value in PUBLISHED_ZCU102_GOPS.items())
    return f"published on ZCU102: {others}; this design {gops:.1f} GOP/s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("hwmodel.report", __doc__)
    parser.add_argument(
        "--model", help=f"timm model name or {', '.join(NAMED_ARCHITECTURES)} (default: {DEFAULT_MODEL})"
    )
    parser.add_argument("--device", help=f"device name or YAML path (default: {DEFAULT_DEVICE})")
    parser.add_argument(
        "--config",
        help="accelerator config JSON or an exported accelerator.json (priced on the model, device and "
        "caps it records unless --model/--device say otherwise; default: the default design)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    design: DesignFile | None = None
    caps = UtilisationCaps()
    if args.config:
        path = Path(args.config)
        raw = read_json(path, "accelerator config")
        if is_design_document(raw):
            design = read_design(path, raw)
            caps = design.caps
            config = design.config
        else:
            config = load_config(path)
    if args.model is None and design is not None:
        workload = recorded_workload(design)
    else:
        workload = workload_from_name(args.model or DEFAULT_MODEL)
    if args.device is None and design is not None:
        device = design.device
    else:
        device = load_device(args.device or DEFAULT_DEVICE)
    if not args.config:
        config = default_config(workload, device, caps)
    report = evaluate(workload, config, device, caps, detail=True)
    out = report.to_dict()
    same_inputs = design is not None and args.model is None and args.device is None
    diffs = differences(out, design.predicted) if design is not None and same_inputs else None
    if args.json:
        out["config"] = config.to_dict()
        if diffs is not None:
            out["recorded_differences"] = diffs
        print(json.dumps(out, indent=2))
    else:
        print(format_table(out, asdict(device)))
        if diffs is not None:
            print(_recorded_line(diffs))
        if device.name == "zcu102" and "deit_base" in workload.model_name:
            print(_published_line(report.gops))
    return 0


def _recorded_line(diffs: Sequence[str]) -> str:
    if not diffs:
        return "recorded        reproduced exactly (the file's predicted figures)"
    return "recorded        DIFFERS: " + "; ".join(diffs) + " (new vs recorded)"


if __name__ == "__main__":
    sys.exit(run_main(main, prog="hwmodel.report"))
