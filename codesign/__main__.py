"""``python -m codesign`` is ``python -m codesign.search``."""

import sys

from codesign.cli.search import entry

sys.exit(entry())
