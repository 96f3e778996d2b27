"""Re-scoring after a search: the real top-1 accuracy of every Pareto design and baseline."""

from __future__ import annotations

from dataclasses import replace

from codesign.context import SearchContext
from codesign.results.front import Outcome


def rescore(ctx: SearchContext, outcome: Outcome) -> Outcome:
    """``outcome`` with the real top-1 accuracy of every Pareto design and every baseline (none
    without an evaluator: a hardware-only search)."""
    if ctx.evaluator is None:
        return outcome
    targets = {r.number: r for r in outcome.pareto}
    targets.update({r.number: r for r in outcome.rows if r.baseline})
    real = dict(outcome.real_accuracy)
    for number, r in sorted(targets.items()):
        cand = ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant)
        real[number] = ctx.evaluator.accuracy(cand.quant)
    return replace(outcome, real_accuracy=real)
