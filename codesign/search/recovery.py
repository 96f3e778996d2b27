"""Crash recovery: the RUNNING trials of dead workers are failed and their parameters re-enqueued.

A worker that dies mid-trial (SIGKILL, OOM, a lost machine) leaves its trial RUNNING. The next
worker that looks fails it and re-enqueues its parameters (``RetryHeartbeatStaleTrialCallback``):

* RDB storages (SQLite, PostgreSQL): Optuna's heartbeats; a trial whose heartbeat is older than the
  grace period (:mod:`codesign.search.heartbeat`) is stale.
* journal files (no heartbeats): every trial records ``host:pid`` of its worker (user attribute
  ``worker``, :func:`worker_label`); a trial of a process of this host that no longer exists is
  stale.
* any storage: a RUNNING trial that never reached the objective (no parameter, no ``worker``
  attribute) and started more than the grace period ago (its worker died inside ``ask``, before
  its heartbeat started).
"""

from __future__ import annotations

import datetime
import os
import socket
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from codesign.procs import pid_alive
from codesign.search.heartbeat import MAX_RETRY, heartbeat_settings


def worker_label() -> str:
    """``host:pid`` of this process, stored on each trial it runs (crash recovery, diagnostics)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_local_owner(trial: FrozenTrial) -> bool:
    owner = trial.user_attrs.get("worker")
    if not isinstance(owner, str) or ":" not in owner:
        return False
    host, pid = owner.rsplit(":", 1)
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def stale_trials(study: optuna.Study, grace_s: float, heartbeats: bool) -> list[FrozenTrial]:
    """RUNNING trials whose worker is gone (see the module docstring); those the storage's
    ``heartbeats`` find are not included."""
    now = datetime.datetime.now()
    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not t.params and "worker" not in t.user_attrs:
            started = t.datetime_start
            if started is not None and (now - started).total_seconds() > grace_s:
                stale.append(t)
        elif not heartbeats and _dead_local_owner(t):
            stale.append(t)
    return stale


def recover_stale_trials(study: optuna.Study, heartbeats: bool) -> list[int]:
    """Fail the trials of dead workers and re-enqueue their parameters; their numbers.
    ``heartbeats``: the study's storage records them (an RDB storage of :mod:`.storage`)."""
    _, grace = heartbeat_settings()
    running = {t._trial_id: t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # RDB heartbeats (runs the storage's retry callback)
    failed = [
        number
        for trial_id, number in running.items()
        if study._storage.get_trial(trial_id).state == TrialState.FAIL
    ]
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    for t in stale_trials(study, grace, heartbeats):
        try:
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first, or the trial finished after all
        retry(study, study._storage.get_trial(t._trial_id))
        failed.append(t.number)
    return sorted(failed)
