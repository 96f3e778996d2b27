"""The exported designs of a search: ``designs/<trial>/`` for every Pareto design
(accelerator.json, quant.json, model_int.pt, model.qonnx.onnx, rtl/engine.v)."""

from __future__ import annotations

import json
from pathlib import Path

from codesign.atomic import replace_dir_atomic
from codesign.context import SearchContext
from codesign.export import (
    accelerator_document,
    engine_verilog_for,
    quant_document,
    write_int_model,
    write_json,
)
from codesign.qonnx_export import QONNX_FILE, export_qonnx
from codesign.results.front import Outcome
from hwmodel.model import evaluate


def export_designs(ctx: SearchContext, outcome: Outcome, run_dir: Path, with_rtl: bool = True) -> list[Path]:
    """Write ``designs/<trial>/`` for every Pareto design (swapped in atomically as one folder)."""
    written: list[Path] = []
    verilog_cache: dict[str, str] = {}

    def build(tmp: Path) -> None:
        for r in outcome.pareto:
            cand = ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant)
            d = tmp / str(r.number)
            d.mkdir(parents=True)
            report = evaluate(ctx.workload, cand.accel, ctx.device, ctx.study.caps, detail=True)
            accel_doc = accelerator_document(cand, ctx.workload, ctx.device, ctx.study.caps, report, r.number)
            write_json(d / "accelerator.json", accel_doc)
            accuracy = {
                "proxy": r.attrs.get("proxy"),
                "proxy_kind": ctx.study.proxy_kind,
                "real_top1": outcome.real_accuracy.get(r.number),
            }
            act_scales = None
            if ctx.evaluator is not None and ctx.fixed_quant is None:
                qmodel = ctx.evaluator.quantized(cand.quant)
                write_int_model(d / "model_int.pt", qmodel)
                export_qonnx(qmodel, ctx.evaluator.splits.test_x[:2], d / QONNX_FILE)
                act_scales = {str(k): float(v) for k, v in getattr(qmodel, "quant_act_scales", {}).items()}
            doc = quant_document(cand.quant, ctx.layers, ctx.workload.model_name, accuracy, act_scales)
            write_json(d / "quant.json", doc)
            if with_rtl:
                engine_key = json.dumps(accel_doc["engines"], sort_keys=True)
                if engine_key not in verilog_cache:
                    verilog_cache[engine_key] = engine_verilog_for(cand, ctx.workload, ctx.device)
                (d / "rtl").mkdir()
                (d / "rtl" / "engine.v").write_text(verilog_cache[engine_key], encoding="utf-8")
            written.append(run_dir / "designs" / str(r.number))

    replace_dir_atomic(run_dir / "designs", build)
    return written
