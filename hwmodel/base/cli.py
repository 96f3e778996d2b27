"""Command-line plumbing shared by every command of ``hwmodel`` and ``codesign``.

One error format: bad input (an argparse usage error or a :class:`~hwmodel.base.errors.UserError`) is
one line ``<command>: error: <message>`` on stderr and exit status 2, where ``<command>`` is the
module name (``codesign.search``). A command builds its parser with :func:`command_parser` and
runs its ``main`` through :func:`run_main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from hwmodel.base.errors import UserError


def error_line(command: str, message: str) -> str:
    """The one line every command prints for bad input."""
    return f"{command}: error: {message}\n"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one :func:`error_line` and exits 2.

    ``prog`` is what a user types (``python -m codesign.search``); errors name the module.
    """

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(error_line(self.prog.removeprefix("python -m "), message))
        raise SystemExit(2)


def command_parser(module: str, doc: str | None) -> OneLineParser:
    """The parser of ``python -m <module>``, described by the first line of its docstring."""
    return OneLineParser(prog=f"python -m {module}", description=(doc or "").strip().splitlines()[0])


def prepare_process() -> None:
    """Process-wide settings of a command, made by its entry point (never at import): timm and
    Hugging Face stay offline (no download; DESIGN.md §4)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_main(
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    prog: str = "codesign",
) -> int:
    """Run a command's ``main`` after :func:`prepare_process`; a :class:`UserError` becomes one
    :func:`error_line` (``prog``: the module name) and exit status 2."""
    prepare_process()
    try:
        return main(argv)
    except UserError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(error_line(prog, message))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130


def exit_process(code: int) -> NoReturn:
    """End a command's process with ``code`` now: flush its output, stop its daemonic child
    processes and skip the interpreter's teardown, which takes seconds once torch and timm are
    loaded (every file a command writes is complete and closed before it returns)."""
    import logging
    import multiprocessing as mp

    children = [c for c in mp.active_children() if c.daemon]
    for child in children:
        child.terminate()
    for child in children:
        child.join(5.0)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'")
    return value


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _int_at_least(text, 1, "an integer > 0")


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    return _int_at_least(text, 0, "an integer ≥ 0")
