"""The one error type for bad user input; every command prints it as one line and exits 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad user input (missing file, wrong key, unknown name, bad value); the message is one line."""

    def __init__(self, message: str) -> None:
        one_line = " ".join(str(message).split())
        super().__init__(one_line)
        self.message = one_line
