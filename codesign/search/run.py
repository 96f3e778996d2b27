"""The one set-up of a search: :class:`SearchRun`, opened from a resolved, frozen
:class:`~codesign.study.Study`.

It owns everything a process needs to run trials of the study: the context (model, data, device,
space, evaluator), the storage, the Optuna study with its sampler, and the objective primed with
the trials already in the storage. The main process of ``python -m codesign.search`` opens it
(:meth:`SearchRun.open`: creates or resumes the Optuna study; :meth:`SearchRun.with_baselines`
enqueues the baselines into a new one); each worker process, handed the pickled study, joins it
(:meth:`SearchRun.join`: the same Optuna study, its own sampler stream).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from codesign.context import SearchContext, build_context
from codesign.search.baselines import BaselineTrial, baseline_trials, enqueue_baselines
from codesign.search.objective import Objective
from codesign.search.resume import open_study
from codesign.search.sampler import make_sampler
from codesign.search.storage import open_storage
from codesign.study import Study


@dataclass(frozen=True)
class SearchRun:
    study: Study
    context: SearchContext
    storage_url: str
    storage: BaseStorage
    optuna_study: optuna.Study
    objective: Objective
    #: Where the context caches what it precomputes (the run folder), handed on to the workers.
    cache_dir: Path | None
    #: Trials in the storage when the main process opened it: every sampler seed is offset by it,
    #: so a resumed run draws fresh streams.
    seed_base: int
    #: Names of the baselines enqueued into a new study (none when resumed, none in a worker).
    baselines: tuple[str, ...] = ()
    #: Whether :meth:`open` created the Optuna study (it then wants its baselines).
    created: bool = False
    #: Identifies one ``python -m codesign.search`` invocation (its main process and its pooled
    #: workers): stored on every trial they run, so the run counts its own trials among others'.
    run_id: str = ""

    @property
    def heartbeats(self) -> bool:
        """Whether the storage records heartbeats of running trials (RDB storages do)."""
        return isinstance(self.storage, RDBStorage)

    @classmethod
    def open(
        cls,
        study: Study,
        storage_url: str,
        cache_dir: Path | None = None,
        parallel: bool = False,
    ) -> SearchRun:
        """The main process: create the Optuna study or resume it. ``parallel``: other workers
        will share it (their running trials are "constant liars"). A new study
        (:attr:`created`) gets its baselines from :meth:`with_baselines`."""
        context = build_context(study, cache_dir=cache_dir)
        storage = open_storage(storage_url)
        optuna_study, created = open_study(context, storage)
        existing = optuna_study.get_trials(deepcopy=False)
        seed_base = len(existing)
        optuna_study.sampler = make_sampler(study, seed_offset=seed_base, parallel=parallel)
        run = cls._primed(
            study,
            context,
            storage_url,
            storage,
            optuna_study,
            cache_dir,
            seed_base,
            (),
            run_id=uuid.uuid4().hex[:12],
            trials=existing,
        )
        return replace(run, created=created)

    def with_baselines(self, baselines: Sequence[BaselineTrial] | None = None) -> SearchRun:
        """The run with the baselines enqueued (``baselines``: computed elsewhere, e.g. by the
        re-scoring process, from the same study; None: computed here) when :meth:`open` created
        the study; as it is otherwise."""
        if not self.created or self.baselines:
            return self
        trials = baseline_trials(self.context) if baselines is None else baselines
        return replace(self, baselines=tuple(enqueue_baselines(self.optuna_study, trials)))

    @classmethod
    def join(
        cls,
        study: Study,
        storage_url: str,
        seed_base: int,
        seed_offset: int,
        cache_dir: Path | None = None,
        run_id: str = "",
        worker: int = 0,
    ) -> SearchRun:
        """A worker process: the Optuna study the main process opened, sampled with its own stream
        (seed offset ``seed_base + seed_offset``) as one of several workers of run ``run_id``
        (``worker``: its index, which picks its GPU when torch sees several)."""
        context = build_context(study, cache_dir=cache_dir, worker=worker)
        storage = open_storage(storage_url)
        sampler = make_sampler(study, seed_offset=seed_base + seed_offset, parallel=True)
        optuna_study = optuna.load_study(study_name=study.name, storage=storage, sampler=sampler)
        return cls._primed(
            study, context, storage_url, storage, optuna_study, cache_dir, seed_base, (), run_id
        )

    @classmethod
    def _primed(
        cls,
        study: Study,
        context: SearchContext,
        storage_url: str,
        storage: BaseStorage,
        optuna_study: optuna.Study,
        cache_dir: Path | None,
        seed_base: int,
        baselines: tuple[str, ...],
        run_id: str,
        trials: Sequence[FrozenTrial] | None = None,
    ) -> SearchRun:
        """The run with its objective primed by ``trials`` (default: the study's, fetched now)."""
        objective = Objective(context, run_id)
        objective.prime(optuna_study.get_trials(deepcopy=False) if trials is None else trials)
        return cls(
            study,
            context,
            storage_url,
            storage,
            optuna_study,
            objective,
            cache_dir,
            seed_base,
            baselines,
            run_id=run_id,
        )

    def trials_run_here(self, trials: Sequence[FrozenTrial]) -> int:
        """How many of ``trials`` (the study's) this invocation completed (main process and pooled
        workers)."""
        if not self.run_id:
            return 0
        return sum(
            1 for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("run") == self.run_id
        )
