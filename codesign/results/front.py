"""The feasible Pareto front of a search and its hypervolume.

Hypervolume (own code, :mod:`codesign.pareto`): every objective becomes a cost to minimise
(maximised ones negated) and is normalised to [0, 1] between the best (0) and the worst (1) value
among all feasible trials of the run; the reference point is 1.1 in every normalised objective.
The same normalisation scores the front of the search and the front of the baselines alone, so
the two numbers compare directly (hypervolume of the unit cube of this run = 1.1^d at most).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from codesign.objectives import OBJECTIVES
from codesign.pareto import hypervolume, non_dominated
from codesign.results.interval import wilson_interval
from codesign.results.trials import TrialRow

HV_REFERENCE = 1.1


@dataclass(frozen=True)
class Outcome:
    """What a finished search found: its trials, the feasible Pareto front, hypervolumes and the
    real accuracy of the re-scored designs (:func:`codesign.results.rescore.rescore`)."""

    def top1_interval(self, trial: int) -> tuple[float, float] | None:
        """The 95 % (Wilson) interval of trial ``trial``'s real top-1, when it was measured."""
        top1 = self.real_accuracy.get(trial)
        if top1 is None or not self.test_images:
            return None
        return wilson_interval(top1, self.test_images)

    objectives: tuple[str, ...]
    rows: tuple[TrialRow, ...]
    pareto: tuple[TrialRow, ...]
    real_accuracy: Mapping[int, float] = field(default_factory=dict)
    #: the test images each real accuracy was measured on (None: not re-scored)
    test_images: int | None = None
    hypervolume: float = 0.0
    baseline_hypervolume: float = 0.0
    hv_history: tuple[tuple[int, float], ...] = ()
    bounds: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())


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


def join_front(front: Sequence[TrialRow], row: TrialRow, objectives: Sequence[str]) -> list[TrialRow] | None:
    """The feasible front ``front`` with ``row`` added, or None when ``row`` does not join it
    (infeasible, dominated, or a design already on it). Joining rows one at a time in trial order
    gives :func:`pareto_rows` of all of them."""
    if not row.feasible:
        return None
    grown = pareto_rows([*front, row], objectives)
    return grown if any(r is row for r in grown) else None


def normalised_hypervolume(
    rows: Sequence[TrialRow], objectives: Sequence[str], bounds: tuple[np.ndarray, np.ndarray]
) -> float:
    if not rows:
        return 0.0
    lo, hi = bounds
    span = np.where(hi > lo, hi - lo, 1.0)
    pts = (costs(rows, objectives) - lo) / span
    return hypervolume(pts, [HV_REFERENCE] * len(objectives))


def analyse(rows: Sequence[TrialRow], objectives: tuple[str, ...]) -> Outcome:
    feasible = [r for r in rows if r.feasible]
    pareto = tuple(pareto_rows(rows, objectives))
    if not feasible:
        return Outcome(objectives=objectives, rows=tuple(rows), pareto=pareto)
    c = costs(feasible, objectives)
    bounds = (c.min(axis=0), c.max(axis=0))
    front: list[TrialRow] = []  # the feasible front so far: the hypervolume moves only when it does
    history = []
    hv = 0.0
    for r in rows:
        grown = join_front(front, r, objectives)
        if grown is not None:
            front, hv = grown, normalised_hypervolume(grown, objectives, bounds)
        history.append((r.number, hv))
    return Outcome(
        objectives=objectives,
        rows=tuple(rows),
        pareto=pareto,
        hypervolume=normalised_hypervolume(pareto, objectives, bounds),
        baseline_hypervolume=normalised_hypervolume([r for r in feasible if r.baseline], objectives, bounds),
        hv_history=tuple(history),
        bounds=(tuple(bounds[0].tolist()), tuple(bounds[1].tolist())),
    )
