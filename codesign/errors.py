"""Bad user input: :class:`hwmodel.base.errors.UserError`, the one error type of every command
(re-exported here for the ``codesign`` modules)."""

from __future__ import annotations

from hwmodel.base.errors import UserError

__all__ = ["UserError"]
