"""Reading YAML at the edge: a missing file or a syntax error is one line naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hwmodel.errors import UserError


def read_yaml(path: Path, what: str) -> Any:
    """The parsed content of a YAML file (``what`` names the kind of file in errors)."""
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from exc
