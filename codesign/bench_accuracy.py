"""``python -m codesign.bench_accuracy``: the command lives in :mod:`codesign.cli.bench_accuracy`."""

from codesign.cli.bench_accuracy import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
