"""Trials until a study holds a budget of COMPLETE trials, all workers together."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from codesign.search.recovery import recover_stale_trials

#: How often a worker that waits for other workers' trials looks at the storage again.
POLL_S = 0.25

TrialFunction = Callable[[optuna.Trial], tuple[float, ...]]
#: an Optuna callback, called after each trial
TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def optimize_budget(
    study: optuna.Study,
    objective: TrialFunction,
    budget: int,
    heartbeats: bool,
    timeout_s: float | None = None,
    show_progress_bar: bool = False,
    poll_s: float = POLL_S,
    callbacks: Sequence[TrialCallback] = (),
) -> int:
    """Run trials until the study holds ``budget`` COMPLETE trials (all workers together).

    A trial is started only while COMPLETE + RUNNING < budget; when the other workers' running
    trials fill the budget this worker waits for them (and fails them if their worker died, see
    :func:`~codesign.search.recovery.recover_stale_trials`; ``heartbeats``: the storage records
    them). ``callbacks``: Optuna callbacks after each trial of this worker. Returns the number of
    trials this call ran.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    extra = list(callbacks)
    ran = 0
    while True:
        recover_stale_trials(study, heartbeats)
        complete, running = _counts(study)
        if complete >= budget:
            return ran
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return ran
        if complete + running >= budget:
            time.sleep(poll_s)
            continue
        n_before = len(study.get_trials(deepcopy=False))
        study.optimize(
            objective,
            n_trials=budget - complete - running,
            timeout=left,
            callbacks=[MaxTrialsCallback(budget, states=(TrialState.COMPLETE, TrialState.RUNNING)), *extra],
            show_progress_bar=show_progress_bar,
        )
        ran += max(len(study.get_trials(deepcopy=False)) - n_before, 0)
