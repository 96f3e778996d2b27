"""The Optuna side of a search: :class:`SearchRun` (the one set-up) and what it is made of.

=================  ==============================================================================
``run``            :class:`SearchRun`: context, storage, Optuna study, sampler, primed objective
``storage``        RDB / journal storages, SQLite write-lock transactions
``heartbeat``      heartbeat interval and grace period of running trials
``resume``         create the Optuna study or resume it (same space, objectives, FPS target)
``sampler``        TPE / NSGA-II / random, seeded per worker
``objective``      the per-trial objective (suggest, score once, constraints)
``baselines``      the uniform baselines enqueued into a new study
``budget``         trials until the study holds a budget of COMPLETE trials
``recovery``       fail and re-enqueue the trials of dead workers
``workers``        the pool of worker processes
``ahead``          re-scoring the front beside the trials (a process of its own, one worker)
``logs``           Optuna's logging as the commands want it (set by entry points)
=================  ==============================================================================

``python -m codesign.search`` is the command (:mod:`codesign.cli.search`).
"""

from codesign.search.run import SearchRun
from codesign.search.storage import default_storage, open_storage
from codesign.search.workers import WorkerPool

__all__ = ["SearchRun", "WorkerPool", "default_storage", "open_storage"]
