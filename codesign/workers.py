"""Several worker processes on one study: a global trial budget, crash recovery, start-up barrier.

Every worker (the main process of ``python -m codesign.search`` and the ``--workers N`` − 1
processes it spawns, or the same command started on other machines against one PostgreSQL
storage) runs :func:`optimize_budget`: trials until the study holds ``budget`` COMPLETE trials,
counting the trials other workers are running so that the budget is not overshot.

A worker that dies mid-trial (SIGKILL, OOM, a lost machine) leaves its trial RUNNING. It is failed
and its parameters re-enqueued (``RetryHeartbeatStaleTrialCallback``) by the next worker that looks:

* RDB storages (SQLite, PostgreSQL): Optuna's heartbeats; a trial whose heartbeat is older than the
  grace period (``CODESIGN_HEARTBEAT_S`` / ``CODESIGN_GRACE_S``, 10 s / 30 s) is stale.
* journal files (no heartbeats): every trial records ``host:pid`` of its worker (user attribute
  ``worker``); a trial of a process of this host that no longer exists is stale.
* any storage: a RUNNING trial that never reached the objective (no parameter, no ``worker``
  attribute) and started more than the grace period ago (its worker died inside ``ask``, before
  its heartbeat started).
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import UserError
from codesign.runner import MAX_RETRY, heartbeat_settings

#: How often a worker that waits for other workers' trials looks at the storage again.
POLL_S = 0.25
#: Seed offset between the worker processes of one run (worker i uses seed + base + i·SEED_STRIDE).
SEED_STRIDE = 7919

Objective = Callable[[optuna.Trial], tuple[float, ...]]


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, killed but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_local_owner(trial: FrozenTrial) -> bool:
    owner = trial.user_attrs.get("worker")
    if not isinstance(owner, str) or ":" not in owner:
        return False
    host, pid = owner.rsplit(":", 1)
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def stale_trials(study: optuna.Study, grace_s: float) -> list[FrozenTrial]:
    """RUNNING trials whose worker is gone (see the module docstring); heartbeats not included."""
    now = datetime.datetime.now()
    heartbeat = is_heartbeat_enabled(study._storage)
    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not t.params and "worker" not in t.user_attrs:
            started = t.datetime_start
            if started is not None and (now - started).total_seconds() > grace_s:
                stale.append(t)
        elif not heartbeat and _dead_local_owner(t):
            stale.append(t)
    return stale


def recover_stale_trials(study: optuna.Study) -> list[int]:
    """Fail the trials of dead workers and re-enqueue their parameters; their numbers."""
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
    for t in stale_trials(study, grace):
        try:
            if not study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first, or the trial finished after all
        retry(study, study._storage.get_trial(t._trial_id))
        failed.append(t.number)
    return sorted(failed)


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def optimize_budget(
    study: optuna.Study,
    objective: Objective,
    budget: int,
    timeout_s: float | None = None,
    show_progress_bar: bool = False,
    poll_s: float = POLL_S,
) -> int:
    """Run trials until the study holds ``budget`` COMPLETE trials (all workers together).

    A trial is started only while COMPLETE + RUNNING < budget; when the other workers' running
    trials fill the budget this worker waits for them (and fails them if their worker died, see
    :func:`recover_stale_trials`). Returns the number of trials this call ran.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    ran = 0
    while True:
        recover_stale_trials(study)
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
            callbacks=[MaxTrialsCallback(budget, states=(TrialState.COMPLETE, TrialState.RUNNING))],
            show_progress_bar=show_progress_bar,
        )
        ran += max(len(study.get_trials(deepcopy=False)) - n_before, 0)


@dataclass(frozen=True)
class WorkerSpec:
    """What a spawned worker needs to rebuild the search on its own (picklable)."""

    storage_url: str
    budget: int
    index: int
    seed_base: int = 0
    timeout_s: float | None = None


def worker_main(args: dict[str, Any], spec: WorkerSpec, barrier: Any = None) -> None:
    """The work of a spawned worker: one torch thread, the same study, the shared budget.

    ``args`` is the parsed command line (``vars(args)``). ``barrier`` (a ``multiprocessing.Barrier``),
    when given, is waited on after start-up so that a benchmark times the trials only.
    """
    import argparse

    import torch

    torch.set_num_threads(1)
    from codesign.context import build_context
    from codesign.runner import Objective, make_sampler, open_storage, quiet_optuna
    from codesign.search import resolve_study

    quiet_optuna()
    ns = argparse.Namespace(**args)
    try:
        study = resolve_study(ns)
        ctx = build_context(study, ns.hw_only, cache_dir=Path(ns.out) / study.name)
        storage = open_storage(spec.storage_url)
        sampler = make_sampler(ctx, seed_offset=spec.seed_base + SEED_STRIDE * spec.index, parallel=True)
        optuna_study = optuna.load_study(study_name=study.name, storage=storage, sampler=sampler)
        objective = Objective(ctx, study.fps)
        objective.prime(optuna_study.get_trials(deepcopy=False))
    except UserError as exc:
        sys.stderr.write(f"codesign.search: worker {spec.index}: error: {exc}\n")
        raise SystemExit(2) from None
    if barrier is not None:
        barrier.wait()
    optimize_budget(optuna_study, objective, spec.budget, spec.timeout_s)


def _pool_entry(args: dict[str, Any], inbox: Any, barrier: Any) -> None:
    """A pooled process: import everything now, then wait for a :class:`WorkerSpec` (or None)."""
    import torch

    torch.set_num_threads(1)
    import codesign.search  # noqa: F401  (the slow imports, while the main process sets up)

    spec = inbox.get()
    if spec is None:
        return
    try:
        worker_main(args, spec, barrier)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        raise SystemExit(1) from None


def start_method() -> str:
    """``fork`` while this process is still single-threaded and has run no trial (the workers
    start at once, with every module already imported, and open their own storage and torch
    thread pool); ``spawn`` otherwise (a fresh interpreter: seconds of imports per worker)."""
    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


class WorkerPool:
    """Worker processes started before the main process opens the storage, idle until :meth:`run`
    tells them where it is; daemonic, so an error in the main process ends them too.
    """

    def __init__(self, args: dict[str, Any], count: int, barrier: Any = None, method: str = "") -> None:
        ctx: Any = mp.get_context(method or start_method())
        self.inbox = ctx.Queue()
        self.procs: list[mp.process.BaseProcess] = []
        for i in range(count):
            p = ctx.Process(
                target=_pool_entry, args=(args, self.inbox, barrier), name=f"codesign-worker-{i + 1}"
            )
            p.daemon = True
            p.start()
            self.procs.append(p)

    @classmethod
    def prestart(cls, args: Any) -> WorkerPool:
        """``args.workers`` − 1 processes for ``python -m codesign.search --workers N``."""
        return cls(dict(vars(args)), max(int(getattr(args, "workers", 1)) - 1, 0))

    def send(self, storage_url: str, budget: int, seed_base: int, timeout_s: float | None) -> None:
        for i in range(1, len(self.procs) + 1):
            self.inbox.put(WorkerSpec(storage_url, budget, i, seed_base, timeout_s))

    def join(self) -> list[str]:
        """Wait for every worker; one warning line per worker that did not end cleanly."""
        for p in self.procs:
            p.join()
        return [
            f"worker {i} (pid {p.pid}) exited with status {p.exitcode}; the others went on without it"
            for i, p in enumerate(self.procs, start=1)
            if p.exitcode not in (0, None)
        ]

    def stop(self, timeout_s: float = 10.0) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout_s)
        self.inbox.close()

    def run(
        self,
        study: optuna.Study,
        objective: Objective,
        storage_url: str,
        budget: int,
        seed_base: int = 0,
        timeout_s: float | None = None,
        show_progress_bar: bool = False,
    ) -> list[str]:
        """Run the study to ``budget`` COMPLETE trials: the pool's workers and this process."""
        self.send(storage_url, budget, seed_base, timeout_s)
        try:
            optimize_budget(
                study,
                objective,
                budget,
                timeout_s=timeout_s,
                show_progress_bar=show_progress_bar and not self.procs,
            )
            return self.join()
        finally:
            self.stop()
