"""``python -m codesign.search``: the command lives in :mod:`codesign.cli.search`."""

import sys

from codesign.cli.search import entry

sys.exit(entry())
