"""Shared command-line plumbing: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from hwmodel.errors import InputError

#: Exception types every entry point reports as one line (extended by ``codesign``).
USER_ERRORS: tuple[type[BaseException], ...] = (InputError,)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def run_main(
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    user_errors: tuple[type[BaseException], ...] = USER_ERRORS,
    prog: str = "codesign",
) -> int:
    """Run ``main``; a user error becomes ``prog: error: <message>`` and exit code 2."""
    try:
        return main(argv)
    except user_errors as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"{prog}: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got '{text}'")
    return value
