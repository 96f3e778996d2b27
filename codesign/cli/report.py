"""``python -m codesign.report runs/<study> [--trial N [--qonnx | --integer [--images K]]] [--json]``.

Prints the Pareto table of a finished run (proxy and real top-1 accuracy) and regenerates its
plots (pareto.png, pareto.html, hypervolume.png); ``--trial N`` prints the
per-layer hardware breakdown of the exported design N (from its accelerator.json); ``--trial N
--qonnx`` runs its QONNX graph with qonnx's executor on the test images and states the largest
logit difference from the PyTorch fake-quant model and the argmax agreement; ``--trial N
--integer`` runs its model_int.pt fake-quantized and as the integer-only program
(:mod:`codesign.integer_top1`) on the test images and states both top-1s, their difference and
how many images get the same top-1 class (``--images K``: the first K test images).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from codesign.errors import UserError
from codesign.integer_top1 import IntegerTop1, compare_integer
from codesign.proxy import Evaluator
from codesign.qonnx_export import DIFF_TOLERANCE, QONNX_FILE, QonnxCheck, check_qonnx
from codesign.quant import check_integer_config, load_int_model, on_cpu
from codesign.results import format_pareto, read_history, read_rows
from codesign.results.plots import render_run_plots
from codesign.run_folder import design_dir, load_run_evaluator, read_design_quant, read_summary
from codesign.torch_device import add_torch_device_argument
from hwmodel.base.cli import command_parser, positive_int, run_main
from hwmodel.base.yamlio import read_json
from hwmodel.report import format_table

COMMAND = "codesign.report"


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("run_dir", help="a run folder, e.g. runs/default")
    p.add_argument("--trial", type=int, help="per-layer breakdown of this exported design")
    p.add_argument("--json", action="store_true", help="print the run summary (or the design) as JSON")
    p.add_argument("--no-plots", action="store_true", help="do not regenerate the plots")
    checks = p.add_mutually_exclusive_group()
    checks.add_argument(
        "--qonnx",
        action="store_true",
        help="with --trial: run the design's model.qonnx.onnx with qonnx's executor on the test "
        "images and compare its logits with the PyTorch fake-quant model",
    )
    checks.add_argument(
        "--integer",
        action="store_true",
        help="with --trial: run the design's model_int.pt integer-only and fake-quantized on the "
        "test images and compare their top-1",
    )
    p.add_argument(
        "--images",
        type=positive_int,
        help="with --qonnx or --integer: the first N test images (default: all)",
    )
    add_torch_device_argument(p)
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    info = read_summary(run_dir)
    if args.qonnx or args.integer:
        if args.trial is None:
            flag = "--qonnx" if args.qonnx else "--integer"
            raise UserError(f"{flag} needs --trial N (the design to check)")
        where = (run_dir, args.trial, info, args.images, args.torch_device)
        result: QonnxCheck | IntegerTop1
        if args.qonnx:
            result = qonnx_check(*where)
            line = _qonnx_line(result)
        else:
            result = integer_check(*where)
            line = _integer_line(result)
        print(json.dumps(asdict(result), indent=2) if args.json else f"trial {args.trial}: {line}")
        return 0
    if args.trial is not None:
        doc_path = design_dir(run_dir, args.trial, info) / "accelerator.json"
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


def _qonnx_line(check: QonnxCheck) -> str:
    return (
        f"{QONNX_FILE} ({check.quant_nodes} Quant nodes) by qonnx's executor vs "
        f"the PyTorch fake-quant model on {check.images} test images: max |logit difference| "
        f"{check.max_abs_logit_diff:.3g} (median {check.median_abs_logit_diff:.2g}; "
        f"{check.images_differing} images beyond {DIFF_TOLERANCE:g}), argmax agreement "
        f"{check.argmax_agreement_pct:.2f} %"
    )


def _integer_line(res: IntegerTop1) -> str:
    return (
        f"top-1 on {res.images} test images: fake-quant {res.fake_quant_top1:.2f} %, integer-only "
        f"{res.integer_top1:.2f} % ({res.integer_minus_fake_quant_pt:+.2f} pt); same top-1 on "
        f"{res.same_top1} / {res.images} images, max |logit difference| "
        f"{res.max_abs_logit_diff:.3g}; integer program {res.integer_s:.1f} s"
    )


def qonnx_check(
    run_dir: Path,
    trial: int,
    info: dict[str, Any],
    images: int | None = None,
    torch_device: str | None = None,
) -> QonnxCheck:
    """The QONNX file of design ``trial`` against its model_int.pt, on the study's test images."""
    folder = design_dir(run_dir, trial, info)
    if not (folder / QONNX_FILE).is_file():
        raise UserError(f"{folder}: no {QONNX_FILE} (a hardware-only design, or exported before QONNX)")
    qmodel, evaluator = _design_model(run_dir, folder, info, torch_device)
    test = evaluator.splits.test
    return check_qonnx(folder / QONNX_FILE, qmodel, test.head(images or len(test)))


def integer_check(
    run_dir: Path,
    trial: int,
    info: dict[str, Any],
    images: int | None = None,
    torch_device: str | None = None,
) -> IntegerTop1:
    """Design ``trial``'s model_int.pt fake-quantized and integer-only on the study's first
    ``images`` test images (all when ``None``). A design the integer program cannot run is
    refused (one line) before the model loads."""
    folder = design_dir(run_dir, trial, info)
    if not info.get("hw_only"):  # (a hardware-only run says so when its model is asked for)
        doc, config = read_design_quant(folder)
        layers = doc.get("LayerName")
        check_integer_config(config, list(layers) if isinstance(layers, dict) else None)
    qmodel, evaluator = _design_model(run_dir, folder, info, torch_device)
    return compare_integer(qmodel, evaluator.splits.test, images, evaluator.batch_size)


def _design_model(
    run_dir: Path, folder: Path, info: dict[str, Any], torch_device: str | None
) -> tuple[nn.Module, Evaluator]:
    """An exported design's model_int.pt (on the CPU) and the run's evaluator."""
    evaluator = load_run_evaluator(run_dir, info, torch_device)
    return load_int_model(folder / "model_int.pt", on_cpu(evaluator.model)), evaluator


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
