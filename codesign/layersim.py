"""``python -m codesign.layersim``: the command lives in :mod:`codesign.cli.layersim`."""

from codesign.cli.layersim import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
