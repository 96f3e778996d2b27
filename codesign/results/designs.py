"""The exported designs of a search: ``designs/<trial>/`` for every Pareto design
(accelerator.json, quant.json, model_int.pt, model.qonnx.onnx, rtl/engine.v with its
self-checking Icarus testbench rtl/tb_engine.v (and the DSP primitives' simulation models,
rtl/dsp_models.v) and the non-linear units' Verilog).

``program.bin``, ``params.bin`` and ``program.json`` are the design's accelerator program
(:mod:`codesign.program`) where the integer program can run it (else ``program.json`` holds the
reason alone). ``quant.json``'s ``accuracy.integer`` holds the design's integer-only top-1 against
its fake-quant top-1 on the study's first ``integer_images`` test images
(:mod:`codesign.integer_top1`), or the reason it has none (the integer program cannot run it, a
hardware-only run, ``integer_images: 0``).

``designs.json`` (beside ``designs/``) records what each design folder was written from (a digest
of its accelerator and quantization documents, the evaluator's fingerprint, whether Verilog was
asked for, the integer-only check's image count and the codesign version): a later run whose
designs would be the same keeps the folder as it is instead of quantizing and generating
everything again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

import codesign
from codesign.atomic import replace_dir_atomic
from codesign.context import SearchContext
from codesign.errors import UserError
from codesign.export import (
    ACCELERATOR_FILE,
    DSP_MODELS_FILE,
    TESTBENCH_FILE,
    accelerator_document,
    accelerator_verilog_for,
    controller_verilog_for,
    engine_verilog_for,
    nonlinear_units_for,
    nonlinear_verilog,
    quant_document,
    tb_operands_for,
    write_int_model,
    write_json,
)
from codesign.integer_top1 import integer_accuracy, integer_refusal
from codesign.program import PROGRAM_FILE, PROGRAM_JSON, export_program
from codesign.qonnx_export import QONNX_FILE, QonnxExporter
from codesign.quant import QuantConfig, on_cpu
from codesign.results.front import Outcome
from codesign.results.trials import TrialRow
from codesign.space import Candidate
from hwmodel.arch.controller import ControllerSpec
from hwmodel.arch.engine import EngineConfig
from hwmodel.base.yamlio import read_json
from hwmodel.model.evaluation import design_controller, design_engine, evaluate

#: Beside ``designs/`` (written after the folder is swapped in: a stale one only causes a re-export).
MANIFEST = "designs.json"


@dataclass(frozen=True)
class _Plan:
    """One design to export: its documents (without the calibrated activation scales and the
    integer-only figures) and digest."""

    number: int
    cand: Candidate
    accel_doc: dict[str, Any]
    accuracy: dict[str, Any]
    digest: str
    #: test images of its integer-only check (None: not checked, ``accuracy["integer"]`` says why)
    integer_images: int | None


def _with_model(ctx: SearchContext) -> bool:
    """Whether the run's designs have a quantized model to export (not a hardware-only run)."""
    return ctx.evaluator is not None and ctx.fixed_quant is None


def _integer_plan(ctx: SearchContext, quant: QuantConfig) -> tuple[int | None, str | None]:
    """(test images of the design's integer-only check, or None and the reason it gets none)."""
    if not _with_model(ctx):
        return None, "no quantized model (hardware-only run)"
    refusal = integer_refusal(quant, ctx.layers)
    if refusal is not None:
        return None, refusal
    if ctx.study.integer_images == 0:
        return None, "not checked (integer_images: 0)"
    return ctx.study.integer_images, None


def _plans(ctx: SearchContext, outcome: Outcome, with_rtl: bool) -> list[_Plan]:
    fingerprint = ctx.evaluator.fingerprint() if ctx.evaluator is not None else None
    plans = []
    for r in outcome.pareto:
        cand = ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant)
        report = evaluate(ctx.workload, cand.accel, ctx.device, ctx.study.caps, detail=True)
        accel_doc = accelerator_document(cand, ctx.workload, ctx.device, ctx.study.caps, report, r.number)
        ci = outcome.top1_interval(r.number)
        integer_images, reason = _integer_plan(ctx, cand.quant)
        accuracy = {
            "proxy": r.attrs.get("proxy"),
            "proxy_kind": ctx.evaluator.proxy_kind if ctx.evaluator is not None else ctx.study.proxy_kind,
            "real_top1": outcome.real_accuracy.get(r.number),
            "real_top1_ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
            "test_images": outcome.test_images,
            **({"integer": {"reason": reason}} if reason is not None else {}),
        }
        inputs = {
            "accelerator": accel_doc,
            "quant": quant_document(cand.quant, ctx.layers, ctx.workload.model_name, accuracy, None),
            "evaluator": fingerprint,
            "rtl": with_rtl,
            "version": codesign.__version__,
            # the figures follow from the rest and this count (a design without them: None)
            "integer_images": integer_images,
        }
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        plans.append(_Plan(r.number, cand, accel_doc, accuracy, digest[:24], integer_images))
    return plans


def _manifest(plans: list[_Plan]) -> dict[str, Any]:
    return {"designs": {str(p.number): p.digest for p in plans}}


def _up_to_date(
    ctx: SearchContext, run_dir: Path, plans: list[_Plan], with_rtl: bool, with_model: bool
) -> bool:
    """Whether ``designs/`` already holds exactly these designs, complete."""
    folder = run_dir / "designs"
    try:
        if read_json(run_dir / MANIFEST, "export manifest") != _manifest(plans):
            return False
    except UserError:  # no manifest, or an unreadable or damaged one: export again
        return False
    wanted = ["accelerator.json", "quant.json"] + ["model_int.pt", QONNX_FILE] * with_model

    def files(p: _Plan) -> list[str]:
        units = (
            [f"rtl/{kind}.v" for kind, *_ in nonlinear_units_for(p.cand, ctx.workload)] if with_rtl else []
        )
        program = [PROGRAM_JSON] * (with_model and integer_refusal(p.cand.quant, ctx.layers) is None)
        if program and with_rtl and (folder / str(p.number) / PROGRAM_FILE).is_file():
            program.append(f"rtl/{ACCELERATOR_FILE}")
        return (
            wanted
            + program
            + ["rtl/engine.v", f"rtl/{TESTBENCH_FILE}", "rtl/controller.v"] * with_rtl
            + units
        )

    return all((folder / str(p.number) / f).is_file() for p in plans for f in files(p))


class RtlTexts:
    """The Verilog of designs' engines (with their DSP primitives' simulation models), tile
    controllers and non-linear units, each text built once: designs that share an engine share its
    text. :meth:`prebuild` makes them ahead of the export (the search does it while the re-scoring
    process measures accuracies); the export takes what is built and builds what is missing."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self._engines: dict[EngineConfig, tuple[str, str]] = {}
        self._controllers: dict[ControllerSpec, str] = {}
        self._units: dict[tuple[str, int, int, str], str] = {}

    def engine(self, cand: Candidate) -> tuple[str, str]:
        """``engine.v`` and its DSP primitives' simulation models (empty: none needed)."""
        from hwmodel.rtl.verilog import dsp_sim_sources

        ctx = self.ctx
        key = design_engine(ctx.workload, cand.accel, ctx.device)
        if key not in self._engines:
            text = engine_verilog_for(cand, ctx.workload, ctx.device)
            self._engines[key] = (text, "\n".join(dsp_sim_sources(text)))
        return self._engines[key]

    def controller(self, cand: Candidate) -> str:
        ctx = self.ctx
        key = design_controller(ctx.workload, cand.accel, ctx.device)
        if key not in self._controllers:
            self._controllers[key] = controller_verilog_for(cand, ctx.workload, ctx.device)
        return self._controllers[key]

    def units(self, cand: Candidate) -> list[tuple[str, str]]:
        """(kind, Verilog) of each non-linear unit (softmax, LayerNorm, GELU) of the design."""
        out = []
        for unit in nonlinear_units_for(cand, self.ctx.workload):
            if unit not in self._units:
                self._units[unit] = nonlinear_verilog(*unit)
            out.append((unit[0], self._units[unit]))
        return out

    def prebuild(self, rows: Sequence[TrialRow]) -> None:
        """Build the texts of the designs of ``rows`` (trial rows of this study)."""
        ctx = self.ctx
        for r in rows:
            cand = ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant)
            self.engine(cand)
            self.controller(cand)
            self.units(cand)


def export_designs(
    ctx: SearchContext,
    outcome: Outcome,
    run_dir: Path,
    with_rtl: bool = True,
    progress: bool = False,
    rtl: RtlTexts | None = None,
) -> list[Path]:
    """Write ``designs/<trial>/`` for every Pareto design (swapped in atomically as one folder),
    unless the folder already holds these very designs. ``progress``: a progress bar; ``rtl``:
    Verilog texts built ahead (:meth:`RtlTexts.prebuild`)."""
    plans = _plans(ctx, outcome, with_rtl)
    written = [run_dir / "designs" / str(p.number) for p in plans]
    with_model = _with_model(ctx)
    if _up_to_date(ctx, run_dir, plans, with_rtl, with_model):
        return written
    texts = rtl or RtlTexts(ctx)
    if with_rtl:
        from hwmodel.rtl.testbench import engine_testbench

    qonnx = QonnxExporter(ctx.evaluator.splits.test.head(2)) if ctx.evaluator is not None else None

    def build(tmp: Path) -> None:
        for p in tqdm(plans, desc="exporting", unit="design", disable=not progress):
            d = tmp / str(p.number)
            d.mkdir(parents=True)
            write_json(d / "accelerator.json", p.accel_doc)
            act_scales = None
            qmodel = None
            accuracy = p.accuracy
            if with_model:
                ev = ctx.evaluator
                assert ev is not None and qonnx is not None
                qmodel = on_cpu(ev.quantized(p.cand.quant))  # exports run on the CPU
                write_int_model(d / "model_int.pt", qmodel)
                qonnx.export(qmodel, d / QONNX_FILE)
                act_scales = {str(k): float(v) for k, v in getattr(qmodel, "quant_act_scales", {}).items()}
                if p.integer_images is not None:
                    block = integer_accuracy(qmodel, ev.splits.test, p.integer_images, ev.batch_size)
                    accuracy = {**accuracy, "integer": block}
            doc = quant_document(p.cand.quant, ctx.layers, ctx.workload.model_name, accuracy, act_scales)
            write_json(d / "quant.json", doc)
            if qmodel is not None and integer_refusal(p.cand.quant, ctx.layers) is None:
                report = evaluate(ctx.workload, p.cand.accel, ctx.device, ctx.study.caps, detail=True)
                export_program(d, qmodel, report, ctx.workload.model_name)
                if with_rtl and (d / PROGRAM_FILE).is_file():
                    (d / "rtl").mkdir()
                    text = accelerator_verilog_for(d / PROGRAM_FILE, ctx.workload, p.cand.accel, ctx.device)
                    (d / "rtl" / ACCELERATOR_FILE).write_text(text, encoding="utf-8")
            if with_rtl:
                engine_text, dsp_models = texts.engine(p.cand)
                (d / "rtl").mkdir(exist_ok=True)
                (d / "rtl" / "engine.v").write_text(engine_text, encoding="utf-8")
                image = ctx.evaluator.splits.test.head(1) if ctx.evaluator is not None else None
                engine = design_engine(ctx.workload, p.cand.accel, ctx.device)
                tile = tb_operands_for(p.cand, ctx.workload, engine, qmodel, image, seed=p.number)
                tb = engine_testbench(engine, engine_text, tile)
                (d / "rtl" / TESTBENCH_FILE).write_text(tb, encoding="utf-8")
                if dsp_models:
                    (d / "rtl" / DSP_MODELS_FILE).write_text(dsp_models, encoding="utf-8")
                (d / "rtl" / "controller.v").write_text(texts.controller(p.cand), encoding="utf-8")
                for kind, text in texts.units(p.cand):
                    (d / "rtl" / f"{kind}.v").write_text(text, encoding="utf-8")

    (run_dir / MANIFEST).unlink(missing_ok=True)  # until the new designs are in place
    replace_dir_atomic(run_dir / "designs", build)
    write_json(run_dir / MANIFEST, _manifest(plans))
    return written
