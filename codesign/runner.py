"""The Optuna side of a search: storage, study creation/resume, baselines, the trial objective."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Literal, cast

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from codesign.context import SearchContext
from codesign.errors import UserError
from codesign.objectives import OBJECTIVES
from codesign.quant import QuantConfig
from codesign.scoring import Score, constraint_values, score
from codesign.space import Candidate
from hwmodel.model import evaluate

#: Heartbeat of a running trial (RDB storages) and how long a silent trial may go before another
#: worker fails it and re-enqueues its parameters; override with these environment variables.
HEARTBEAT_S = 10
GRACE_S = 30
HEARTBEAT_ENV = "CODESIGN_HEARTBEAT_S"
GRACE_ENV = "CODESIGN_GRACE_S"
#: How many times a trial of a dead worker is re-run before it stays failed.
MAX_RETRY = 3
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
#: How long a SQLite transaction waits for another worker's to finish before it gives up.
SQLITE_BUSY_TIMEOUT_S = 60.0


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in whole seconds, from the environment or the defaults."""
    values = []
    for env, default in ((HEARTBEAT_ENV, HEARTBEAT_S), (GRACE_ENV, GRACE_S)):
        text = os.environ.get(env, "").strip()
        if not text:
            values.append(default)
            continue
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{env}={text!r}: expected a whole number of seconds > 0") from None
        if value <= 0:
            raise UserError(f"{env}={text!r}: expected a whole number of seconds > 0")
        values.append(value)
    heartbeat, grace = values
    if grace <= heartbeat:
        raise UserError(f"{GRACE_ENV} ({grace} s) must be longer than {HEARTBEAT_ENV} ({heartbeat} s)")
    return heartbeat, grace


def worker_label() -> str:
    """``host:pid`` of this process, stored on each trial it runs (crash recovery, diagnostics)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg (v3) to SQLAlchemy 2.1; use psycopg2 when that is what is installed."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


#: Uniform designs enqueued first: (name, weight bits, activation bits, PoT ratio).
BASELINES: tuple[tuple[str, int, int, float], ...] = (
    ("W8A8 fixed", 8, 8, 0.0),
    ("W4A8 fixed", 4, 8, 0.0),
    ("Auto-ViT-Acc-like W4/PoT4 mix A8", 4, 8, 0.5),
)


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / 'study.db'}"


def open_storage(url: str) -> BaseStorage:
    """An RDB URL (sqlite://, postgresql://, ...) with heartbeats, or a journal file path.

    Nothing is created for a bad URL; an unreachable server is a :class:`UserError`.
    """
    heartbeat, grace = heartbeat_settings()
    if "://" not in url:
        path = Path(url)
        if path.suffix not in JOURNAL_SUFFIXES:
            raise UserError(
                f"storage '{url}': give an RDB URL (sqlite:///path.db, postgresql://...) "
                "or a journal file (*.log)"
            )
        if not path.parent.is_dir():
            raise UserError(f"storage '{url}': folder {path.parent} does not exist")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"storage '{url}': journal file is not readable and writable")
        # A worker killed while appending leaves the lock file behind: others break it after the
        # same grace period as a silent trial (Optuna's default is 30 s).
        lock = JournalFileSymlinkLock(str(path), grace_period=max(grace, 3))  # < 3 s: Optuna warns
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    engine_kwargs: dict[str, Any] | None = None
    sqlite = url.startswith("sqlite")
    if sqlite:
        db = url.split("///", 1)[1] if "///" in url else ""
        if db and db != ":memory:" and not Path(db).parent.is_dir():
            raise UserError(f"storage '{url}': folder {Path(db).parent} does not exist")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        # No pool_pre_ping: it doubles the round trips of every storage call (a trial makes ~40);
        # connections are recycled instead, and a worker that loses its server can be restarted.
        engine_kwargs = {"pool_recycle": 1800}
        if url.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        storage = RDBStorage(
            sqlalchemy_url(url),
            heartbeat_interval=heartbeat,
            grace_period=grace,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            engine_kwargs=engine_kwargs,
        )
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL / unreachable server
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"storage '{_redact(url)}' unreachable: {detail[:160]}") from exc
    if sqlite:
        serialise_sqlite_transactions(storage.engine)
    return storage


def serialise_sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Make every SQLite transaction of ``engine`` take the database's write lock when it begins.

    SQLite ignores ``SELECT ... FOR UPDATE`` and Python's driver begins a transaction only at the
    first write, so two worker processes can both read a queued (WAITING) trial, both mark it
    RUNNING and both run it; the second then fails with "Cannot tell a COMPLETE trial" (Optuna's
    read-check-write of the trial state is atomic on PostgreSQL, not here). ``BEGIN IMMEDIATE``
    (SQLAlchemy's recipe for pysqlite) makes each read-check-write one serialised transaction.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _driver_leaves_transactions_to_sqlalchemy(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners (schema check) are not reused


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def make_sampler(
    ctx: SearchContext, seed_offset: int = 0, parallel: bool = False
) -> optuna.samplers.BaseSampler:
    """The study's sampler; constraints reach it through ``trial.set_constraint`` (Optuna ≥ 5).

    ``parallel``: other workers share the study, so TPE treats their running trials as
    "constant liars" instead of sampling next to them; ``seed_offset`` gives each worker its own
    stream (worker index, so a run with the same worker count is repeatable per worker).
    """
    seed = ctx.study.seed + seed_offset
    if ctx.study.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=24)
    if ctx.study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=16, multivariate=True, group=True, constant_liar=parallel
    )


class Objective:
    """The callable Optuna runs per trial; equal candidates are scored once (cache)."""

    def __init__(self, ctx: SearchContext, fps_target: float | None) -> None:
        self.ctx = ctx
        self.fps_target = fps_target
        self.cache: dict[str, Score] = {}
        self.cache_hits = 0

    def candidate(self, params: dict[str, Any]) -> Candidate:
        return self.ctx.space.decode(params, self.ctx.layers, self.ctx.fixed_quant)

    def prime(self, trials: list[FrozenTrial]) -> None:
        """Reuse the results of finished trials (a resumed study, other workers)."""
        names = self.ctx.objectives
        for t in trials:
            if t.state == TrialState.COMPLETE and t.values is not None and len(t.values) == len(names):
                attrs = t.user_attrs.get("score")
                if isinstance(attrs, dict) and isinstance(attrs.get("key"), str):
                    self.cache[attrs["key"]] = Score(tuple(t.values), attrs)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        trial.set_user_attr("worker", worker_label())  # who ran it: journal crash recovery, diagnostics
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
        return cached.values


def baseline_hardware(ctx: SearchContext, quant: QuantConfig, fps_target: float | None) -> dict[str, Any]:
    """The fastest feasible array (rows × cols × PoT share × packing × clock) of the space for a
    uniform design, with middle tile choices; the least-violating one when none is feasible."""
    hw = ctx.space.hardware
    mid = {k: getattr(hw, k)[len(getattr(hw, k)) // 2] for k in ("tm", "tn_folds", "tk_folds")}
    wants_pot = any(quant.for_layer(n).pot_ratio > 0 for n in ctx.layers)
    shares = [s for s in hw.pot_cols_share if (s > 0) == wants_pot] or [0.0]
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    for rows, cols, share, packing, freq in itertools.product(
        hw.rows, hw.cols, shares, hw.packing, hw.freq_mhz
    ):
        params = {
            "hw.rows": rows,
            "hw.cols": cols,
            "hw.freq_mhz": freq,
            "hw.pot_cols_share": share,
            "hw.nonlinear_lanes": max(hw.nonlinear_lanes),
            "hw.packing": packing,
            **{f"hw.{k}": v for k, v in mid.items()},
        }
        if share not in hw.pot_cols_share:
            continue
        cand = ctx.space.decode(params, ctx.layers, quant)
        rep = evaluate(ctx.workload, cand.accel, ctx.device, ctx.study.caps)
        violation = max(
            max(rep.utilisation[k] / getattr(ctx.study.caps, k) for k in rep.utilisation) - 1.0, 0.0
        )
        if cand.accel.freq_mhz > ctx.device.max_freq_mhz:
            violation += 1.0
        rank = (violation, -rep.fps)
        if best is None or rank < best[0]:
            best = (rank, params)
    assert best is not None
    return best[1]


def enqueue_baselines(study: optuna.Study, ctx: SearchContext, fps_target: float | None) -> list[str]:
    """Enqueue the uniform baselines of :data:`BASELINES` (only into a new study)."""
    names = []
    if ctx.fixed_quant is not None:
        hw = baseline_hardware(ctx, ctx.fixed_quant, fps_target)
        study.enqueue_trial(hw, user_attrs={"baseline": "fixed quantization, largest array"})
        return ["fixed quantization, largest array"]
    for name, w, a, ratio in BASELINES:
        if ratio > 0 and max(ctx.space.hardware.pot_cols_share) == 0:
            continue
        quant = ctx.space.quant_from_params(
            ctx.space.baseline_params(ctx.layers, w, a, ratio, {}), ctx.layers, ratio > 0
        )
        params_hw = baseline_hardware(ctx, quant, fps_target)
        params = ctx.space.baseline_params(
            ctx.layers, w, a, ratio, {k.removeprefix("hw."): v for k, v in params_hw.items()}
        )
        study.enqueue_trial(params, user_attrs={"baseline": name})
        names.append(name)
    return names


def open_study(
    ctx: SearchContext, storage: BaseStorage, directions: list[str], fps_target: float | None
) -> tuple[optuna.Study, bool]:
    """Create the study or resume it; refuse to resume with another space or other objectives."""
    name = ctx.study.name
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    fingerprint = ctx.space.fingerprint()
    mode = "hw-only" if ctx.fixed_quant is not None else "joint"
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        if attrs.get("space_fingerprint") not in (None, fingerprint):
            raise UserError(
                f"study '{name}' in this storage was run with another search space "
                f"({attrs.get('space_source')}); use a new --out/--storage or the same space"
            )
        if attrs.get("objectives") not in (None, list(ctx.objectives)) or attrs.get("mode") not in (
            None,
            mode,
        ):
            raise UserError(
                f"study '{name}' in this storage has objectives {attrs.get('objectives')} "
                f"({attrs.get('mode')}); "
                f"this run asks for {list(ctx.objectives)} ({mode})"
            )
        if attrs.get("fps_target", fps_target) != fps_target:
            raise UserError(
                f"study '{name}' in this storage was run with an FPS target of {attrs.get('fps_target')}; "
                f"this run asks for {fps_target} (use another --out/--storage for a new target)"
            )
        return study, False
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=cast("list[Literal['minimize', 'maximize']]", directions),
        load_if_exists=True,
    )
    study.set_user_attr("space_fingerprint", fingerprint)
    study.set_user_attr("space_source", str(ctx.space.source))
    study.set_user_attr("objectives", list(ctx.objectives))
    study.set_user_attr("mode", mode)
    study.set_user_attr("fps_target", fps_target)
    study.set_user_attr("model", ctx.workload.model_name)
    study.set_user_attr("device", ctx.device.name)
    return study, True


def directions(ctx: SearchContext) -> list[str]:
    return [OBJECTIVES[o].direction for o in ctx.objectives]


class _ReportedByCodesign(logging.Filter):
    """Drops Optuna's log lines about what codesign reports itself in one line: a dead worker's
    journal lock being broken, a study without feasible trials."""

    MESSAGES = ("lock file has not been released", "does not have any completed and feasible trials")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(m in message for m in self.MESSAGES)


_FILTER = _ReportedByCodesign()


def quiet_optuna() -> None:
    """Optuna's info logs and its experimental/deprecation warnings are noise for users."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logger = logging.getLogger("optuna")
    logger.setLevel(logging.WARNING)
    for target in (logger, *logger.handlers):
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
