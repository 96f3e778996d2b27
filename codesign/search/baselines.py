"""The uniform baselines enqueued first into a new study, each on the fastest feasible array."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import optuna

from codesign.context import SearchContext
from codesign.quant import QuantConfig
from codesign.space import kernel_param, lanes_param
from hwmodel.model.evaluation import evaluate

#: Uniform designs enqueued first: (name, weight bits, activation bits, PoT ratio).
BASELINES: tuple[tuple[str, int, int, float], ...] = (
    ("W8A8 fixed", 8, 8, 0.0),
    ("W4A8 fixed", 4, 8, 0.0),
    ("Auto-ViT-Acc-like W4/PoT4 mix A8", 4, 8, 0.5),
)


#: The one baseline of a study with a fixed quantization.
FIXED_BASELINE = "fixed quantization, largest array"

#: Hardware keys the baselines choose jointly (the array); then the per-kind lanes the space names
#: (jointly), the non-linear kernel variants it names (jointly), then the others one at a time.
ARRAY_KEYS = ("rows", "cols", "pot_cols_share", "packing", "freq_mhz", "nonlinear_lanes")
#: Rounds of (array jointly, then every other key alone) at most; a round that improves nothing ends it.
MAX_ROUNDS = 4


def baseline_hardware(ctx: SearchContext, quant: QuantConfig) -> dict[str, Any]:
    """The fastest feasible hardware of the space for a uniform design, by coordinate ascent: every
    array (rows × cols × PoT share × packing × clock × non-linear lanes, which share the DSPs) with
    the tiles at their middle choice and the kernels at their first choice, then the non-linear
    kernel variants the space names (jointly), then each tile key alone, then the array again,
    until a round improves nothing. Ranked by
    (:meth:`DesignReport.violation` clipped at 0, −FPS): the least-violating design when none is
    feasible. Returns the trial parameters (``hw.*`` and ``q.kernel.*``)."""
    hw = ctx.space.hardware
    choices: dict[str, tuple[Any, ...]] = {
        f"hw.{f.name}": getattr(hw, f.name) for f in fields(hw) if f.name != "kind_lanes"
    }
    lane_keys = tuple(lanes_param(kind) for kind in hw.kind_lanes)
    choices.update({lanes_param(k): v for k, v in hw.kind_lanes.items()})
    wants_pot = any(quant.for_layer(n).pot_ratio > 0 for n in ctx.layers)
    choices["hw.pot_cols_share"] = tuple(s for s in hw.pot_cols_share if (s > 0) == wants_pot) or (
        min(hw.pot_cols_share),
    )
    kernel_keys = tuple(kernel_param(kind) for kind in ctx.space.quant.kernels)
    choices.update({kernel_param(k): v for k, v in ctx.space.quant.kernels.items()})
    current = {k: v[len(v) // 2] if k not in kernel_keys else v[0] for k, v in choices.items()}
    ranks: dict[tuple[Any, ...], tuple[float, float]] = {}

    def rank(params: dict[str, Any]) -> tuple[float, float]:
        key = tuple(params[k] for k in choices)
        if key not in ranks:
            cand = ctx.space.decode(params, ctx.layers, quant)
            rep = evaluate(ctx.workload, cand.accel, ctx.device, ctx.study.caps)
            ranks[key] = (max(rep.violation(ctx.study.caps, ctx.device.max_freq_mhz), 0.0), -rep.fps)
        return ranks[key]

    best = rank(current)
    array = tuple(f"hw.{k}" for k in ARRAY_KEYS)
    groups = [
        array,
        *([lane_keys] if lane_keys else []),
        *([kernel_keys] if kernel_keys else []),
        *((k,) for k in choices if k not in array + lane_keys + kernel_keys),
    ]
    for _ in range(MAX_ROUNDS):
        improved = False
        for group in groups:
            for combo in itertools.product(*(choices[k] for k in group)):
                params = {**current, **dict(zip(group, combo, strict=True))}
                r = rank(params)
                if r < best:
                    best, current, improved = r, params, True
        if not improved:
            break
    return current


@dataclass(frozen=True)
class BaselineTrial:
    """One baseline to enqueue: its name and the trial's parameters (quantization and hardware)."""

    name: str
    params: dict[str, Any]


def baseline_trials(ctx: SearchContext) -> list[BaselineTrial]:
    """The uniform baselines of :data:`BASELINES`, each on its fastest feasible hardware
    (:func:`baseline_hardware`); with a fixed quantization, that one on the fastest hardware. A
    function of the study alone (the re-scoring process computes them during the set-up)."""
    if ctx.fixed_quant is not None:
        return [BaselineTrial(FIXED_BASELINE, baseline_hardware(ctx, ctx.fixed_quant))]
    out = []
    for name, w, a, ratio in BASELINES:
        if ratio > 0 and max(ctx.space.hardware.pot_cols_share) == 0:
            continue
        quant = ctx.space.quant_from_params(
            ctx.space.baseline_params(ctx.layers, w, a, ratio, {}), ctx.layers, ratio > 0
        )
        params_hw = baseline_hardware(ctx, quant)
        params = ctx.space.baseline_params(ctx.layers, w, a, ratio, params_hw)
        out.append(BaselineTrial(name, params))
    return out


def enqueue_baselines(study: optuna.Study, baselines: Sequence[BaselineTrial]) -> list[str]:
    """Enqueue ``baselines`` (only into a new study); their names."""
    for b in baselines:
        study.enqueue_trial(b.params, user_attrs={"baseline": b.name})
    return [b.name for b in baselines]
