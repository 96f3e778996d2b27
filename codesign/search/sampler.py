"""The sampler of a study (TPE, NSGA-II or random), seeded per worker."""

from __future__ import annotations

import optuna

from codesign.study import Study


def make_sampler(study: Study, seed_offset: int = 0, parallel: bool = False) -> optuna.samplers.BaseSampler:
    """The study's sampler; constraints reach it through ``trial.set_constraint`` (Optuna ≥ 5).

    ``parallel``: other workers share the study, so TPE treats their running trials as
    "constant liars" instead of sampling next to them; ``seed_offset`` gives each worker its own
    stream (worker index, so a run with the same worker count is repeatable per worker).
    """
    seed = study.seed + seed_offset
    if study.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=24)
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=16, multivariate=True, group=True, constant_liar=parallel
    )
