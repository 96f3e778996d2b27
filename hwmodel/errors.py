"""Errors raised for bad user input; command-line entries print them as one line and exit 2."""

from __future__ import annotations


class InputError(ValueError):
    """A user-supplied file, name or value is wrong; the message is one line naming it."""
