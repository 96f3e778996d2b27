"""The per-trial objective: suggest a candidate, score it once (cache), record the breakdown and
the constraints."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from codesign.context import SearchContext
from codesign.scoring import Score, constraint_values, score
from codesign.search.recovery import worker_label
from codesign.space import Candidate

#: The system attribute holding a trial's constraint values as one list (Optuna < 5's format).
DASHBOARD_CONSTRAINTS = "constraints"


class Objective:
    """The callable Optuna runs per trial; equal candidates are scored once (cache)."""

    def __init__(self, ctx: SearchContext, run_id: str = "") -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.fps_target = ctx.study.fps
        self.cache: dict[str, Score] = {}
        self.cache_hits = 0

    def candidate(self, params: dict[str, Any]) -> Candidate:
        return self.ctx.space.decode(params, self.ctx.layers, self.ctx.fixed_quant)

    def prime(self, trials: Sequence[FrozenTrial]) -> None:
        """Reuse the results of finished trials (a resumed study, other workers)."""
        names = self.ctx.objectives
        for t in trials:
            if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == len(names):
                attrs = t.user_attrs.get("score")
                if isinstance(attrs, dict) and isinstance(attrs.get("key"), str):
                    self.cache[attrs["key"]] = Score(tuple(t.values), attrs)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        trial.set_user_attr("worker", worker_label())  # who ran it: journal crash recovery, diagnostics
        if self.run_id:
            trial.set_user_attr("run", self.run_id)  # which invocation: its count of new trials
        params = self.ctx.space.suggest(trial, self.ctx.layers, quantize=self.ctx.fixed_quant is None)
        cand = self.candidate(params)
        key = cand.key()
        cached = self.cache.get(key)
        if cached is None:
            cached = score(self.ctx, cand)
            self.cache[key] = cached
        else:
            self.cache_hits += 1
        trial.set_user_attr("score", cached.attrs)  # one write: the whole breakdown
        fps_gap, resource_gap = constraint_values(cached.attrs, self.fps_target)
        with warnings.catch_warnings():  # a retried trial inherits them from its failed attempt
            warnings.filterwarnings("ignore", message="The constraint value is ignored")
            trial.set_constraint("fps", fps_gap)
            trial.set_constraint("resources", resource_gap)
        # the list under "constraints" is what optuna-dashboard (0.21) reads to tell feasible trials
        # from infeasible ones; Optuna reads it too (as constraints "0" and "1", the same values)
        trial.storage.set_trial_system_attr(trial._trial_id, DASHBOARD_CONSTRAINTS, [fps_gap, resource_gap])
        return cached.values
