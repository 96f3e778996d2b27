"""``python -m codesign.finetune``: the command lives in :mod:`codesign.cli.finetune`."""

from codesign.cli.finetune import entry, main
from hwmodel.base.cli import exit_process

__all__ = ["entry", "main"]

if __name__ == "__main__":
    exit_process(entry())
