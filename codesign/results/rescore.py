"""Re-scoring after a search: the real top-1 accuracy of every Pareto design and baseline.

The accuracies are kept in the Optuna study (study user attribute ``real_top1``: the evaluator's
fingerprint and the top-1 per quantization config), so a run that resumes a finished study, or
another worker's run, evaluates only the configs not seen before with this model and test split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import optuna
from tqdm import tqdm

from codesign.context import SearchContext
from codesign.quant import QuantConfig
from codesign.results.front import Outcome

#: The study user attribute holding the real accuracies already measured.
REAL_TOP1_ATTR = "real_top1"


def quant_key(config: QuantConfig) -> str:
    """A stable identity of a quantization config (the real accuracy depends on nothing else;
    with ``nonlinear: float`` not on the kernels either, which are then the hardware's alone)."""
    raw = config.to_dict()
    if config.nonlinear == "float":
        raw.pop("kernels", None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def _known(study: optuna.Study | None, fingerprint: str) -> dict[str, float]:
    if study is None:
        return {}
    stored: Any = study.user_attrs.get(REAL_TOP1_ATTR)
    if not isinstance(stored, dict) or stored.get("fingerprint") != fingerprint:
        return {}
    top1 = stored.get("top1")
    if not isinstance(top1, dict):
        return {}
    return {str(k): float(v) for k, v in top1.items() if isinstance(v, int | float)}


def remember(study: optuna.Study | None, fingerprint: str, top1: Mapping[str, float]) -> None:
    """Keep real accuracies (by :func:`quant_key`) in ``study`` beside those already there."""
    if study is None or not top1:
        return
    known = _known(study, fingerprint)
    known.update(top1)
    study.set_user_attr(REAL_TOP1_ATTR, {"fingerprint": fingerprint, "top1": known})


def _targets(ctx: SearchContext, outcome: Outcome) -> dict[int, QuantConfig]:
    """The quantization config of every Pareto design and every baseline, by trial number."""
    targets = {r.number: r for r in outcome.pareto}
    targets.update({r.number: r for r in outcome.rows if r.baseline})
    return {
        n: ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant).quant for n, r in sorted(targets.items())
    }


def pending(
    ctx: SearchContext, outcome: Outcome, study: optuna.Study | None = None
) -> dict[str, QuantConfig]:
    """The configs :func:`rescore` would evaluate now (by :func:`quant_key`, in trial order): those
    of ``outcome``'s Pareto designs and baselines whose real top-1 ``study`` does not hold yet."""
    if ctx.evaluator is None:
        return {}
    return _unknown(_targets(ctx, outcome), _known(study, ctx.evaluator.fingerprint()))


def _unknown(configs: Mapping[int, QuantConfig], known: Mapping[str, float]) -> dict[str, QuantConfig]:
    """``configs`` by :func:`quant_key` (first of each), those not in ``known``."""
    todo: dict[str, QuantConfig] = {}
    for config in configs.values():
        key = quant_key(config)
        if key not in known:
            todo.setdefault(key, config)
    return todo


def rescore(
    ctx: SearchContext, outcome: Outcome, study: optuna.Study | None = None, progress: bool = False
) -> Outcome:
    """``outcome`` with the real top-1 accuracy of every Pareto design and every baseline (none
    without an evaluator: a hardware-only search). ``study``: where measured accuracies are kept
    between runs; ``progress``: a progress bar over the configs still to evaluate."""
    if ctx.evaluator is None:
        return outcome
    configs = _targets(ctx, outcome)
    fingerprint = ctx.evaluator.fingerprint()
    known = _known(study, fingerprint)
    todo = _unknown(configs, known)
    for key, config in tqdm(todo.items(), desc="re-scoring", unit="design", disable=not progress or not todo):
        known[key] = ctx.evaluator.accuracy(config)
    if todo:
        remember(study, fingerprint, known)
    real = dict(outcome.real_accuracy)
    real.update({n: known[quant_key(c)] for n, c in configs.items()})
    return replace(outcome, real_accuracy=real, test_images=len(ctx.evaluator.splits.test))
