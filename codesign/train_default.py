"""``python -m codesign.train_default``: the command lives in :mod:`codesign.cli.train_default`."""

from codesign.cli.train_default import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
