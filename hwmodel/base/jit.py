"""The project's one way to compile a numeric function to machine code (numba)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

_F = TypeVar("_F", bound=Callable[..., Any])
#: ``@jit``: compiled on first call, once per machine (cached beside the module), no fastmath:
#: IEEE arithmetic in the order written. The function stays callable from Python.
jit = cast(Callable[[_F], _F], numba.njit(cache=True, nogil=True))
