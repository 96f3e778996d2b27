"""Several worker processes on one study: the main process and ``--workers N`` − 1 pooled processes.

Every worker (the main process of ``python -m codesign.search``, the processes it starts, or the
same command started on other machines against one PostgreSQL storage) runs
:func:`~codesign.search.budget.optimize_budget` until the study holds the budget of COMPLETE
trials. The pooled processes start before the main process has set up (they import meanwhile)
and wait for a :class:`WorkerSpec`: the pickled :class:`~codesign.study.Study` and where its
storage is, from which each joins the search (:meth:`SearchRun.join`). A worker that dies is
handled by :mod:`codesign.search.recovery`.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codesign.errors import UserError
from codesign.search.budget import TrialCallback, optimize_budget
from codesign.search.logs import quiet_optuna
from codesign.search.run import SearchRun
from codesign.study import Study
from hwmodel.base.cli import error_line

#: Seed offset between the worker processes of one run (worker i uses seed + base + i·SEED_STRIDE).
SEED_STRIDE = 7919


@dataclass(frozen=True)
class WorkerSpec:
    """What a pooled worker needs to join the search (picklable)."""

    study: Study
    storage_url: str
    cache_dir: Path | None
    budget: int
    index: int
    seed_base: int = 0
    timeout_s: float | None = None
    run_id: str = ""


def worker_main(spec: WorkerSpec, barrier: Any = None) -> None:
    """The work of a pooled worker: join the search, then trials up to the shared budget.

    ``barrier`` (a ``multiprocessing.Barrier``), when given, is waited on after start-up so that a
    benchmark times the trials only.
    """
    try:
        run = SearchRun.join(
            spec.study,
            spec.storage_url,
            spec.seed_base,
            SEED_STRIDE * spec.index,
            spec.cache_dir,
            run_id=spec.run_id,
            worker=spec.index,
        )
    except UserError as exc:
        sys.stderr.write(error_line(f"codesign.search: worker {spec.index}", str(exc)))
        raise SystemExit(2) from None
    run.context.prepare_proxy()  # from the main process's cache file when it wrote one
    if barrier is not None:
        barrier.wait()
    optimize_budget(run.optuna_study, run.objective, spec.budget, run.heartbeats, spec.timeout_s)


def _pool_entry(inbox: Any, barrier: Any) -> None:
    """The entry point of a pooled process: one torch thread, Optuna's logs quiet, then wait for a
    :class:`WorkerSpec` (or None: not needed)."""
    torch.set_num_threads(1)
    quiet_optuna()
    spec = inbox.get()
    if spec is None:
        return
    try:
        worker_main(spec, barrier)
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
    tells them what to join; daemonic, so an error in the main process ends them too.
    """

    def __init__(self, count: int, barrier: Any = None, method: str = "") -> None:
        ctx: Any = mp.get_context(method or start_method())
        self.inbox = ctx.Queue()
        self.procs: list[mp.process.BaseProcess] = []
        for i in range(count):
            p = ctx.Process(target=_pool_entry, args=(self.inbox, barrier), name=f"codesign-worker-{i + 1}")
            p.daemon = True
            p.start()
            self.procs.append(p)

    @classmethod
    def prestart(cls, workers: int) -> WorkerPool:
        """``workers`` − 1 processes for ``python -m codesign.search --workers N``."""
        return cls(max(workers - 1, 0))

    def send(self, run: SearchRun, budget: int, timeout_s: float | None) -> None:
        """Tell every pooled process to join ``run`` and work to ``budget`` COMPLETE trials."""
        for i in range(1, len(self.procs) + 1):
            self.inbox.put(
                WorkerSpec(
                    run.study, run.storage_url, run.cache_dir, budget, i, run.seed_base, timeout_s, run.run_id
                )
            )

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
        run: SearchRun,
        budget: int,
        timeout_s: float | None = None,
        show_progress_bar: bool = False,
        callbacks: Sequence[TrialCallback] = (),
    ) -> list[str]:
        """Run the study to ``budget`` COMPLETE trials: the pool's workers and this process
        (``callbacks``: after each of this process's trials)."""
        self.send(run, budget, timeout_s)
        try:
            optimize_budget(
                run.optuna_study,
                run.objective,
                budget,
                run.heartbeats,
                timeout_s=timeout_s,
                show_progress_bar=show_progress_bar and not self.procs,
                callbacks=callbacks,
            )
            return self.join()
        finally:
            self.stop()
