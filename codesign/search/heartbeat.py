"""How long a silent trial may go before another worker fails it and re-runs its parameters.

RDB storages (SQLite, PostgreSQL) record a heartbeat of every running trial; a trial whose
heartbeat is older than the grace period is stale. Both are whole seconds, from the environment
(``CODESIGN_HEARTBEAT_S``, ``CODESIGN_GRACE_S``) or the defaults.
"""

from __future__ import annotations

import os

from codesign.errors import UserError

HEARTBEAT_S = 10
GRACE_S = 30
HEARTBEAT_ENV = "CODESIGN_HEARTBEAT_S"
GRACE_ENV = "CODESIGN_GRACE_S"
#: How many times a trial of a dead worker is re-run before it stays failed.
MAX_RETRY = 3


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
