"""pytest fixtures: a throwaway PostgreSQL cluster (session) and a fresh database per test.

Import them into a test module with ``from pgcluster import pg_cluster, pg_url``. Without
PostgreSQL server binaries the tests that use them are skipped with the reason (CI installs them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from devtools.pgcluster import PgCluster, PgUnavailable, start_cluster

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = start_cluster()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A new empty database on the session cluster."""
    return pg_cluster.create_database(f"t{next(_names)}")
