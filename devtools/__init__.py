"""Development tools of the codesign repository, not shipped with the package: a throwaway
PostgreSQL cluster (:mod:`devtools.pgcluster`, for the tests and the worker benchmark) and the
worker-scaling benchmark (:mod:`devtools.bench_workers`, ``python -m devtools.bench_workers``)."""
