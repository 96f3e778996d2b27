"""``python -m codesign.rtlsim``: the command lives in :mod:`codesign.cli.rtlsim`."""

from codesign.cli.rtlsim import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
