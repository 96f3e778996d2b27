"""Trials of a finished search as typed rows: the COMPLETE trials with their objective values,
score breakdown, parameters and constraint outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class TrialRow:
    """One COMPLETE trial: objective values (study order), its ``score`` breakdown, parameters."""

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
