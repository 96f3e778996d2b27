"""User-facing errors: one line each, caught by the CLIs (printed, exit status 2)."""

from __future__ import annotations


class UserError(Exception):
    """Bad user input (missing file, wrong key, unknown name). The message is one line."""

    def __init__(self, message: str) -> None:
        one_line = " ".join(str(message).split())
        super().__init__(one_line)
        self.message = one_line
