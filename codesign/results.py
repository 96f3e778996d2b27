"""After a search: trial table, feasible Pareto front, hypervolume, re-scoring and all outputs.

Hypervolume (own code, :mod:`codesign.pareto`): every objective becomes a cost to minimise
(maximised ones negated) and is normalised to [0, 1] between the best (0) and the worst (1) value
among all feasible trials of the run; the reference point is 1.1 in every normalised objective.
The same normalisation scores the front of the search and the front of the baselines alone, so
the two numbers compare directly (hypervolume of the unit cube of this run = 1.1^d at most).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna
from optuna.trial import FrozenTrial, TrialState

from codesign.atomic import replace_dir_atomic, write_text_atomic
from codesign.context import SearchContext
from codesign.export import (
    accelerator_document,
    engine_verilog_for,
    quant_document,
    write_int_model,
    write_json,
)
from codesign.objectives import OBJECTIVES
from codesign.pareto import hypervolume, non_dominated
from hwmodel.model import evaluate

HV_REFERENCE = 1.1


@dataclass(frozen=True)
class TrialRow:
    number: int
    values: tuple[float, ...]
    attrs: dict[str, Any]
    params: dict[str, Any]
    fps_ok: bool
    resources_ok: bool
    baseline: str = ""

    @property
    def feasible(self) -> bool:
        return self.fps_ok and self.resources_ok


@dataclass
class Outcome:
    """What a finished search reports (``summary.json`` / ``--json``)."""

    objectives: tuple[str, ...]
    rows: list[TrialRow]
    pareto: list[TrialRow]
    real_accuracy: dict[int, float] = field(default_factory=dict)
    hypervolume: float = 0.0
    baseline_hypervolume: float = 0.0
    hv_history: list[tuple[int, float]] = field(default_factory=list)
    bounds: tuple[list[float], list[float]] = ([], [])


def trial_rows(trials: Sequence[FrozenTrial], n_objectives: int) -> list[TrialRow]:
    rows = []
    for t in trials:
        if t.state != TrialState.COMPLETE or t.values is None or len(t.values) != n_objectives:
            continue
        attrs = t.user_attrs.get("score")
        if not isinstance(attrs, dict):
            continue
        cons = t.constraints
        rows.append(
            TrialRow(
                number=t.number,
                values=tuple(float(v) for v in t.values),
                attrs=attrs,
                params=dict(t.params),
                fps_ok=float(cons.get("fps", 1.0)) <= 0,
                resources_ok=float(cons.get("resources", 1.0)) <= 0,
                baseline=str(t.user_attrs.get("baseline", "")),
            )
        )
    return sorted(rows, key=lambda r: r.number)


def costs(rows: Sequence[TrialRow], objectives: Sequence[str]) -> npt.NDArray[np.float64]:
    """Objective values as costs to minimise (maximised objectives negated), one row per trial."""
    sign = np.array([-1.0 if OBJECTIVES[o].direction == "maximize" else 1.0 for o in objectives])
    out = np.zeros((len(rows), len(objectives)), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i] = np.asarray(r.values, dtype=np.float64) * sign
    return out


def pareto_rows(rows: Sequence[TrialRow], objectives: Sequence[str]) -> list[TrialRow]:
    """Feasible non-dominated trials, one per distinct design (the first trial that found it)."""
    seen: set[str] = set()
    unique = []
    for r in rows:
        key = str(r.attrs.get("key", r.number))
        if r.feasible and key not in seen:
            seen.add(key)
            unique.append(r)
    if not unique:
        return []
    mask = non_dominated(costs(unique, objectives))
    return [r for r, keep in zip(unique, mask, strict=True) if keep]


def normalised_hypervolume(
    rows: Sequence[TrialRow], objectives: Sequence[str], bounds: tuple[np.ndarray, np.ndarray]
) -> float:
    if not rows:
        return 0.0
    lo, hi = bounds
    span = np.where(hi > lo, hi - lo, 1.0)
    pts = (costs(rows, objectives) - lo) / span
    return hypervolume(pts, [HV_REFERENCE] * len(objectives))


def analyse(rows: list[TrialRow], objectives: tuple[str, ...]) -> Outcome:
    feasible = [r for r in rows if r.feasible]
    pareto = pareto_rows(rows, objectives)
    out = Outcome(objectives=objectives, rows=rows, pareto=pareto)
    if not feasible:
        return out
    c = costs(feasible, objectives)
    bounds = (c.min(axis=0), c.max(axis=0))
    out.bounds = (bounds[0].tolist(), bounds[1].tolist())
    out.hypervolume = normalised_hypervolume(pareto, objectives, bounds)
    out.baseline_hypervolume = normalised_hypervolume([r for r in feasible if r.baseline], objectives, bounds)
    so_far: list[TrialRow] = []
    for r in rows:
        if r.feasible:
            so_far.append(r)
        out.hv_history.append(
            (r.number, normalised_hypervolume(so_far, objectives, bounds) if so_far else 0.0)
        )
    return out


CSV_FIELDS = (
    "trial",
    "baseline",
    "feasible",
    "fps_ok",
    "resources_ok",
    "pareto",
    "accuracy_proxy",
    "accuracy_real",
    "fps",
    "latency_ms",
    "gops",
    "resource_use",
    "dsp",
    "lut",
    "ff",
    "bram36",
    "rows",
    "cols",
    "pot_cols",
    "freq_mhz",
    "precision",
)


def row_record(r: TrialRow, outcome: Outcome, pareto_numbers: set[int]) -> dict[str, Any]:
    a = r.attrs
    rows, cols, pot = (a.get("array") or [0, 0, 0])[:3]
    rec: dict[str, Any] = {
        "trial": r.number,
        "baseline": r.baseline,
        "feasible": int(r.feasible),
        "fps_ok": int(r.fps_ok),
        "resources_ok": int(r.resources_ok),
        "pareto": int(r.number in pareto_numbers),
        "accuracy_proxy": a.get("proxy"),
        "accuracy_real": outcome.real_accuracy.get(r.number),
        "fps": a.get("fps"),
        "latency_ms": a.get("latency_ms"),
        "gops": a.get("gops"),
        "resource_use": a.get("resource_use"),
        "dsp": a.get("dsp"),
        "lut": a.get("lut"),
        "ff": a.get("ff"),
        "bram36": a.get("bram36"),
        "rows": rows,
        "cols": cols,
        "pot_cols": pot,
        "freq_mhz": a.get("freq_mhz"),
        "precision": a.get("precision", ""),
    }
    for name, v in zip(outcome.objectives, r.values, strict=True):
        rec[f"objective.{name}"] = v
    return rec


def write_csv(path: Path, records: list[dict[str, Any]], objectives: Sequence[str]) -> Path:
    fields = list(CSV_FIELDS) + [f"objective.{o}" for o in objectives]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for rec in records:
        writer.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in fields})
    return write_text_atomic(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def rescore(ctx: SearchContext, outcome: Outcome) -> None:
    """Real top-1 accuracy of every Pareto design and every feasible baseline."""
    if ctx.evaluator is None:
        return
    targets = {r.number: r for r in outcome.pareto}
    targets.update({r.number: r for r in outcome.rows if r.baseline})
    for number, r in sorted(targets.items()):
        cand = ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant)
        outcome.real_accuracy[number] = ctx.evaluator.accuracy(cand.quant)


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
            accel_doc = accelerator_document(cand, ctx.workload, ctx.device, report, r.number)
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


def summary(
    ctx: SearchContext, outcome: Outcome, fps_target: float | None, extra: dict[str, Any]
) -> dict[str, Any]:
    feasible = [r for r in outcome.rows if r.feasible]
    return {
        "study": ctx.study.name,
        "model": ctx.workload.model_name,
        "device": ctx.device.name,
        "objectives": list(outcome.objectives),
        "fps_target": fps_target,
        "trials": len(outcome.rows),
        "feasible": len(feasible),
        "pareto": len(outcome.pareto),
        "pareto_trials": [r.number for r in outcome.pareto],
        "baseline_trials": {r.baseline: r.number for r in outcome.rows if r.baseline},
        "hypervolume": outcome.hypervolume,
        "baseline_hypervolume": outcome.baseline_hypervolume,
        "hv_reference": HV_REFERENCE,
        "hv_bounds": {"best": outcome.bounds[0], "worst": outcome.bounds[1]},
        "real_accuracy": {str(k): v for k, v in sorted(outcome.real_accuracy.items())},
        **extra,
    }


def load_trials(storage: optuna.storages.BaseStorage, name: str) -> tuple[optuna.Study, list[FrozenTrial]]:
    study = optuna.load_study(study_name=name, storage=storage)
    return study, study.get_trials(deepcopy=False)


def write_tables(run_dir: Path, outcome: Outcome) -> None:
    pareto_numbers = {r.number for r in outcome.pareto}
    records = [row_record(r, outcome, pareto_numbers) for r in outcome.rows]
    write_csv(run_dir / "trials.csv", records, outcome.objectives)
    write_csv(run_dir / "pareto.csv", [rec for rec in records if rec["pareto"]], outcome.objectives)
    history = "trial,hypervolume\n" + "".join(f"{n},{hv}\n" for n, hv in outcome.hv_history)
    write_text_atomic(run_dir / "hypervolume.csv", history)
