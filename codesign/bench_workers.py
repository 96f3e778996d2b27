"""``python -m codesign.bench_workers``: the worker-scaling benchmark, which lives with the
development tools of the repository (:mod:`devtools.bench_workers`, not shipped in the package)."""

import sys

from hwmodel.base.cli import error_line

if __name__ == "__main__":
    try:
        from devtools.bench_workers import entry
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("devtools"):
            raise
        sys.stderr.write(
            error_line(
                "codesign.bench_workers", "needs a source checkout of codesign (devtools/ beside codesign/)"
            )
        )
        sys.exit(2)
    sys.exit(entry())
