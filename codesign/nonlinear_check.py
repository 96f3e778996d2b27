"""``python -m codesign.nonlinear_check``: the command lives in :mod:`codesign.cli.nonlinear_check`."""

from codesign.cli.nonlinear_check import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
