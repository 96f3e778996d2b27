"""Re-scoring ahead: the real top-1 of the designs on the front, measured while the trials run.

One worker's trial loop keeps about one core busy (Optuna's sampler, the storage's commits, the
hardware model; the ``linkl`` proxy is ~1 ms). A second process (:class:`RescoreAhead`, forked
before the set-up, one torch thread) measures meanwhile what re-scoring will need: the baselines
first, then the designs on the current feasible Pareto front, newest first (:class:`FrontWatch`
offers it the front after every trial that joins it). After the trials its accuracies are kept
in the study like re-scoring's own (:func:`codesign.results.rescore.remember`), so re-scoring
evaluates only the final-front designs it did not reach. They count only when the process's
evaluator has this process's fingerprint (same model, test split and calibration images); an
accuracy does not depend on the torch thread count (checked in tests/test_rescore_ahead.py).

Not started with ``--workers N`` > 1 (the trials use every core) nor for hardware-only runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial
from tqdm import tqdm

from codesign.context import SearchContext, build_context
from codesign.quant import QuantConfig
from codesign.results.front import join_front
from codesign.results.rescore import quant_key
from codesign.results.trials import TrialRow, trial_rows
from codesign.search.baselines import BaselineTrial, baseline_trials
from codesign.search.logs import quiet_optuna
from codesign.search.workers import start_method
from codesign.study import Study

#: How often the process looks for new work (and for its parent) while it has none.
POLL_S = 0.5
#: :attr:`RescoreAhead.fingerprint` of a study without an evaluator (the process then ends).
NO_EVALUATOR = "none"


def _entry(conn: Any, parent_pid: int) -> None:
    """The process: build the study's context, then do what the latest message asks for: compute
    the baselines (``("baselines", None)``) or measure the configs of the latest offer
    (``("offer", [(key, config dict), ...])``); None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    torch.set_num_threads(1)
    quiet_optuna()
    try:
        study = conn.recv()
        if study is None:
            return
        ctx = build_context(study)
        evaluator = ctx.evaluator
        conn.send(("fingerprint", None if evaluator is None else evaluator.fingerprint()))
        if evaluator is None:
            return
        wanted: list[tuple[str, dict[str, Any]]] = []
        done: set[str] = set()
        while os.getppid() == parent_pid:
            todo = [(k, c) for k, c in wanted if k not in done]
            while conn.poll(0 if todo else POLL_S):  # the latest offer replaces the earlier ones
                message = conn.recv()
                if message is None:
                    return
                kind, payload = message
                if kind == "baselines":
                    conn.send(("baselines", [(b.name, b.params) for b in baseline_trials(ctx)]))
                else:
                    wanted = payload
                todo = [(k, c) for k, c in wanted if k not in done]
            if todo:
                key, config = todo[0]
                conn.send(("start", key))
                conn.send(("top1", key, evaluator.accuracy(QuantConfig.from_dict(config))))
                done.add(key)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except Exception as exc:  # the main process re-scores what is missing and says why
        with contextlib.suppress(OSError):
            conn.send(("error", f"{exc.__class__.__name__}: {exc}"))


class RescoreAhead:
    """The re-scoring process, seen from the main process (see the module docstring)."""

    def __init__(self, method: str = "") -> None:
        ctx: Any = mp.get_context(method or start_method())
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_entry, args=(child, os.getpid()), name="codesign-rescore-ahead")
        self._proc.daemon = True
        self._proc.start()
        child.close()
        self.fingerprint: str | None = None
        self.top1: dict[str, float] = {}
        self.error: str | None = None
        #: the config the process is measuring now (by key), as far as its messages tell
        self.measuring: str | None = None
        self._offered: list[str] = []
        self._baselines: list[BaselineTrial] | None = None
        self._closed = False

    @classmethod
    def prestart(cls, workers: int) -> RescoreAhead | None:
        """The process for a one-worker run (started now, before the set-up opens anything)."""
        return cls() if workers == 1 else None

    def begin(self, study: Study | None) -> None:
        """Load ``study``'s model and data in the process (None: nothing to do, it ends)."""
        self._send(study)
        if study is None:
            self._close()

    def offer(self, configs: Mapping[str, QuantConfig]) -> None:
        """The configs to measure, most wanted first (replaces the previous offer)."""
        self._receive()
        keys = [k for k in configs if k not in self.top1]
        if keys and keys != self._offered:
            self._offered = keys
            self._send(("offer", [(k, configs[k].to_dict()) for k in keys]))

    def request_baselines(self) -> None:
        """Ask the process for the study's baselines (:func:`baseline_trials`: the hardware
        search is the process's while this one computes the proxy terms)."""
        self._send(("baselines", None))

    def baselines(self, timeout_s: float = 900.0) -> list[BaselineTrial] | None:
        """The baselines asked for (:meth:`request_baselines`), once the process has them; None
        when it cannot give them (ended, failed, no model to evaluate, or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._receive()
            if self._baselines is not None:
                return self._baselines
            gone = self._closed or not self._proc.is_alive() or self.error is not None
            if gone or self.fingerprint == NO_EVALUATOR:
                return None
            if time.monotonic() > deadline:
                return None
            self._conn.poll(POLL_S)

    def measured(self) -> int:
        """How many configs the process has measured so far."""
        self._receive()
        return len(self.top1)

    def complete(
        self,
        configs: Mapping[str, QuantConfig],
        measure: Callable[[QuantConfig], float],
        meanwhile: Callable[[], None] = lambda: None,
        progress: bool = False,
    ) -> dict[str, float]:
        """Measure every one of ``configs`` (by key, in order) with both processes, then stop the
        process; the accuracies by key, those measured before included. The process goes on from
        the front of the list while this one first runs ``meanwhile`` (other work: the process has
        the second core), then measures (``measure``) from the back, never the config the process
        has started; an ended or failed process leaves the rest to this one. ``progress``: a
        progress bar over the configs."""
        self.offer(configs)
        meanwhile()
        here: dict[str, float] = {}
        with tqdm(total=len(configs), desc="re-scoring", unit="design", disable=not progress) as bar:

            def left() -> list[str]:
                self._receive()
                bar.update(sum(1 for k in configs if k in self.top1 or k in here) - bar.n)
                return [k for k in configs if k not in self.top1 and k not in here]

            while todo := left():
                alive = not self._closed and self._proc.is_alive() and self.error is None
                mine = [k for k in todo if k != self.measuring] if alive else todo
                if not mine:  # the last one is the process's: wait for it
                    self._conn.poll(POLL_S)
                    continue
                key = mine[-1]
                here[key] = measure(configs[key])
                if alive:  # the process drops what this one measured
                    self.offer({k: configs[k] for k in todo if k != key})
        top1 = self.finish()
        top1.update(here)
        return top1

    def finish(self, timeout_s: float = 60.0) -> dict[str, float]:
        """Stop after the measurement in progress; the accuracies measured, by config key."""
        self._send(None)
        self._proc.join(timeout_s)
        self._receive()
        self._close()
        return dict(self.top1)

    def _send(self, message: Any) -> None:
        if self._closed:
            return
        with contextlib.suppress(OSError):  # an ended process: what it measured is still readable
            self._conn.send(message)

    def _receive(self) -> None:
        try:
            while not self._closed and self._conn.poll():
                kind, *rest = self._conn.recv()
                if kind == "fingerprint":
                    self.fingerprint = NO_EVALUATOR if rest[0] is None else str(rest[0])
                elif kind == "baselines":
                    self._baselines = [BaselineTrial(str(n), dict(p)) for n, p in rest[0]]
                elif kind == "start":
                    self.measuring = str(rest[0])
                elif kind == "top1":
                    self.top1[str(rest[0])] = float(rest[1])
                    self.measuring = None
                elif kind == "error":
                    self.error = str(rest[0])
        except (EOFError, OSError):
            pass

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(5.0)
            self._conn.close()


class FrontWatch:
    """An Optuna callback that offers (``offer``: :meth:`RescoreAhead.offer`) the quantization
    configs of the baselines and of the current feasible Pareto front, newest first, whenever a
    trial joins the front. Every design on the final front was on the front when its trial ended,
    so every one is offered. ``trials``: the study's trials before this run's."""

    def __init__(
        self,
        ctx: SearchContext,
        offer: Callable[[Mapping[str, QuantConfig]], None],
        trials: Sequence[FrozenTrial] = (),
    ) -> None:
        self.ctx = ctx
        self.offer = offer
        self.front: list[TrialRow] = []
        self.baselines: list[TrialRow] = []
        self._configs: dict[int, tuple[str, QuantConfig]] = {}  # by trial number, decoded once
        joined = [self._join(r) for r in trial_rows(trials, len(ctx.objectives))]
        if any(joined):
            self._offer()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        for row in trial_rows([trial], len(self.ctx.objectives)):
            if self._join(row):
                self._offer()

    def _join(self, row: TrialRow) -> bool:
        """Take ``row`` in; whether it changes what is offered (a baseline, or a new front)."""
        if row.baseline:
            self.baselines.append(row)
        grown = join_front(self.front, row, self.ctx.objectives)
        if grown is not None:
            self.front = grown
        return bool(row.baseline) or grown is not None

    def _offer(self) -> None:
        ctx = self.ctx
        configs: dict[str, QuantConfig] = {}
        for r in self.baselines + sorted(self.front, key=lambda r: -r.number):
            if r.number not in self._configs:
                config = ctx.space.decode(r.params, ctx.layers, ctx.fixed_quant).quant
                self._configs[r.number] = (quant_key(config), config)
            key, config = self._configs[r.number]
            configs.setdefault(key, config)
        self.offer(configs)
