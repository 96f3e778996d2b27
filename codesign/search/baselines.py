"""The uniform baselines enqueued first into a new study, each on the fastest feasible array."""

from __future__ import annotations

import itertools
from typing import Any

import optuna

from codesign.context import SearchContext
from codesign.quant import QuantConfig
from hwmodel.model import evaluate

#: Uniform designs enqueued first: (name, weight bits, activation bits, PoT ratio).
BASELINES: tuple[tuple[str, int, int, float], ...] = (
    ("W8A8 fixed", 8, 8, 0.0),
    ("W4A8 fixed", 4, 8, 0.0),
    ("Auto-ViT-Acc-like W4/PoT4 mix A8", 4, 8, 0.5),
)


def baseline_hardware(ctx: SearchContext, quant: QuantConfig) -> dict[str, Any]:
    """The fastest feasible array (rows × cols × PoT share × packing × clock) of the space for a
    uniform design, with middle tile choices; the least-violating one
    (:meth:`DesignReport.violation`) when none is feasible."""
    hw = ctx.space.hardware
    mid = {k: getattr(hw, k)[len(getattr(hw, k)) // 2] for k in ("tm", "tn_folds", "tk_folds")}
    wants_pot = any(quant.for_layer(n).pot_ratio > 0 for n in ctx.layers)
    shares = [s for s in hw.pot_cols_share if (s > 0) == wants_pot] or [0.0]
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    for rows, cols, share, packing, freq in itertools.product(
        hw.rows, hw.cols, shares, hw.packing, hw.freq_mhz
    ):
        if share not in hw.pot_cols_share:
            continue
        params = {
            "hw.rows": rows,
            "hw.cols": cols,
            "hw.freq_mhz": freq,
            "hw.pot_cols_share": share,
            "hw.nonlinear_lanes": max(hw.nonlinear_lanes),
            "hw.packing": packing,
            **{f"hw.{k}": v for k, v in mid.items()},
        }
        cand = ctx.space.decode(params, ctx.layers, quant)
        rep = evaluate(ctx.workload, cand.accel, ctx.device, ctx.study.caps)
        rank = (max(rep.violation(ctx.study.caps, ctx.device.max_freq_mhz), 0.0), -rep.fps)
        if best is None or rank < best[0]:
            best = (rank, params)
    assert best is not None
    return best[1]


def enqueue_baselines(study: optuna.Study, ctx: SearchContext) -> list[str]:
    """Enqueue the uniform baselines of :data:`BASELINES` (only into a new study)."""
    names = []
    if ctx.fixed_quant is not None:
        hw = baseline_hardware(ctx, ctx.fixed_quant)
        study.enqueue_trial(hw, user_attrs={"baseline": "fixed quantization, largest array"})
        return ["fixed quantization, largest array"]
    for name, w, a, ratio in BASELINES:
        if ratio > 0 and max(ctx.space.hardware.pot_cols_share) == 0:
            continue
        quant = ctx.space.quant_from_params(
            ctx.space.baseline_params(ctx.layers, w, a, ratio, {}), ctx.layers, ratio > 0
        )
        params_hw = baseline_hardware(ctx, quant)
        params = ctx.space.baseline_params(
            ctx.layers, w, a, ratio, {k.removeprefix("hw."): v for k, v in params_hw.items()}
        )
        study.enqueue_trial(params, user_attrs={"baseline": name})
        names.append(name)
    return names
