"""One function run beside this process, in a forked child that shares its memory.

The child starts as a copy of this process (copy-on-write: a proxy's gigabytes of gradients are not
copied), runs the function on one torch thread and sends its result back through a pipe; the
caller goes on with its own share meanwhile and takes the result with :meth:`Beside.result`. Where
a fork is not available (not Linux), or the child fails or dies, :meth:`Beside.result` gives None
and the caller does the child's share itself: the results are the same either way, only the wall
time differs.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch

T = TypeVar("T")


def cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _child(conn: Any, fn: Callable[[], Any]) -> None:
    torch.set_num_threads(1)
    try:
        conn.send(("ok", fn()))
    except BaseException as exc:  # the parent does the work itself; it only needs to know
        with contextlib.suppress(OSError):
            conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
    finally:
        conn.close()


class Beside(Generic[T]):
    """``fn()`` running in a forked child (see the module docstring)."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.error: str | None = None
        self._proc: Any = None
        if sys.platform != "linux" or "fork" not in mp.get_all_start_methods():
            self.error = "no fork on this platform"
            return
        ctx: Any = mp.get_context("fork")
        self._conn, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(child, fn), name="codesign-beside", daemon=True)
        self._proc.start()
        child.close()

    def result(self) -> T | None:
        """The child's value once it has sent it (None: it failed, or there is no child)."""
        if self._proc is None:
            return None
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            status, value = "error", f"the process ended without a result ({exc.__class__.__name__})"
        finally:
            self._conn.close()
            self._proc.join()
            self._proc = None
        if status != "ok":
            self.error = str(value)
            return None
        return value  # type: ignore[no-any-return]
