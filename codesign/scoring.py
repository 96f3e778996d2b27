"""Scoring one candidate: hardware model + accuracy proxy → objective values, constraints, breakdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codesign.context import SearchContext
from codesign.objectives import HARDWARE_VALUES, resource_use
from codesign.space import Candidate
from hwmodel.model.evaluation import evaluate


@dataclass(frozen=True)
class Score:
    """What a trial records: objective values (study order) and a JSON-able breakdown."""

    values: tuple[float, ...]
    attrs: dict[str, Any]


def score(ctx: SearchContext, cand: Candidate) -> Score:
    study = ctx.study
    rep = evaluate(ctx.workload, cand.accel, ctx.device, study.caps)
    proxy = None
    if ctx.evaluator is not None and "accuracy" in ctx.objectives:
        proxy = ctx.evaluator.proxy(cand.quant)
    values = tuple(
        float(proxy) if name == "accuracy" and proxy is not None else HARDWARE_VALUES[name](rep)
        for name in ctx.objectives
    )
    attrs: dict[str, Any] = {
        "key": cand.key(),
        "proxy": proxy,
        "fps": rep.fps,
        "latency_ms": rep.latency_ms,
        "gops": rep.gops,
        "resource_use": resource_use(rep),
        "dsp": rep.resources.dsp,
        "lut": rep.resources.lut,
        "ff": rep.resources.ff,
        "bram36": rep.resources.bram36,
        "utilisation": rep.utilisation,
        "resource_violation": rep.violation(study.caps, ctx.device.max_freq_mhz),
        "violations": list(rep.violations),
        "array": [cand.accel.rows, cand.accel.cols, cand.accel.pot_cols],
        "freq_mhz": cand.accel.freq_mhz,
        "precision": precision_summary(cand, ctx.layers),
    }
    return Score(values=values, attrs=attrs)


def precision_summary(cand: Candidate, layers: tuple[str, ...]) -> str:
    """A short human string: the distinct per-layer precisions with their counts."""
    counts: dict[str, int] = {}
    for name in layers:
        lq = cand.quant.for_layer(name)
        text = lq.to_string()
        counts[text] = counts.get(text, 0) + 1
    return " ".join(f"{k}×{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def constraint_values(attrs: dict[str, Any], fps_target: float | None) -> list[float]:
    """Optuna constraints (≤ 0 is feasible): FPS ≥ target, resources ≤ caps, clock ≤ device max."""
    fps_gap = (fps_target - float(attrs["fps"])) if fps_target else -1.0
    return [fps_gap, float(attrs["resource_violation"])]
