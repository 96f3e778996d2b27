"""Optuna's logging as codesign's commands want it; set by the entry points (the commands and the
worker processes), never at import."""

from __future__ import annotations

import logging
import warnings

import optuna


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
