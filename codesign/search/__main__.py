"""``python -m codesign.search``: the command lives in :mod:`codesign.cli.search`."""

from codesign.cli.search import entry
from hwmodel.base.cli import exit_process

exit_process(entry())
