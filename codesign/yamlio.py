"""YAML read at the edge: one-line errors that name the file, the key and the allowed values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codesign.errors import UserError
from hwmodel.base.yamlio import read_yaml


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file (``what`` names the kind of file in errors)."""
    raw = read_yaml(path, what)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of {what} keys, got {type(raw).__name__}")
    return raw


def check_keys(raw: Any, allowed: Sequence[str], where: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """``raw`` as a mapping with only ``allowed`` keys and every ``required`` key."""
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(allowed))
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(allowed)})")
    missing = [k for k in required if k not in raw]
    if missing:
        raise UserError(f"{where}: missing key '{missing[0]}'")
    return dict(raw)


def choices(raw: Any, where: str, kind: type, lo: float, hi: float) -> tuple[Any, ...]:
    """A scalar or a non-empty list of numbers of ``kind`` within [lo, hi], as a sorted tuple."""
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise UserError(f"{where}: empty list (give at least one value)")
    out = []
    for v in values:
        ok_type = isinstance(v, int) if kind is int else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not lo <= v <= hi:
            name = "integers" if kind is int else "numbers"
            raise UserError(f"{where}: {v!r} not allowed ({name} in [{lo:g}, {hi:g}])")
        out.append(kind(v))
    return tuple(sorted(set(out)))
