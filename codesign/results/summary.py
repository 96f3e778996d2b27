"""``summary.json`` of a run: what was searched, counts, hypervolumes, real accuracies."""

from __future__ import annotations

from typing import Any

from codesign.context import SearchContext
from codesign.results.front import HV_REFERENCE, Outcome


def summary(ctx: SearchContext, outcome: Outcome) -> dict[str, Any]:
    """The summary of a finished search (the command adds its timings and settings)."""
    feasible = [r for r in outcome.rows if r.feasible]
    return {
        "study": ctx.study.name,
        "model": ctx.workload.model_name,
        "device": ctx.device.name,
        "objectives": list(outcome.objectives),
        "fps_target": ctx.study.fps,
        "trials": len(outcome.rows),
        "feasible": len(feasible),
        "pareto": len(outcome.pareto),
        "pareto_trials": [r.number for r in outcome.pareto],
        "baseline_trials": {r.baseline: r.number for r in outcome.rows if r.baseline},
        "hypervolume": outcome.hypervolume,
        "baseline_hypervolume": outcome.baseline_hypervolume,
        "hv_reference": HV_REFERENCE,
        "hv_bounds": {"best": list(outcome.bounds[0]), "worst": list(outcome.bounds[1])},
        "real_accuracy": {str(k): v for k, v in sorted(outcome.real_accuracy.items())},
        "real_accuracy_ci95": {
            str(k): list(ci) for k in sorted(outcome.real_accuracy) if (ci := outcome.top1_interval(k))
        },
        "test_images": outcome.test_images,
        # the kind the evaluator runs (``auto`` resolved by the class count)
        "proxy_kind": ctx.evaluator.proxy_kind if ctx.evaluator is not None else ctx.study.proxy_kind,
        "seed": ctx.study.seed,
    }
