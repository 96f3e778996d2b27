"""Reading input files at the edge: a missing, unreadable or malformed file is one line naming
the file (a :class:`~hwmodel.base.errors.UserError`), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hwmodel.base.errors import UserError


def read_text_file(path: Path, what: str) -> str:
    """The text of a UTF-8 file (``what`` names the kind of file in errors)."""
    if path.is_dir():
        raise UserError(f"{what} file {path} is a folder, not a file")
    if not path.exists():
        raise UserError(f"{what} file not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file ({what})") from exc
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path} ({exc.strerror or exc})") from exc


def read_yaml(path: Path, what: str) -> Any:
    """The parsed content of a YAML file (``what`` names the kind of file in errors)."""
    text = read_text_file(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from exc


def read_json(path: Path, what: str) -> Any:
    """The parsed content of a JSON file (``what`` names the kind of file in errors)."""
    text = read_text_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
