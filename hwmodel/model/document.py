"""An exported design document (``accelerator.json``) read back: validated, then priced again.

The document (JSON Schema ``hwmodel/model/schemas/accelerator.schema.json``, written by codesign's
export) records everything the model needs: the ``config`` block (an
:class:`~hwmodel.arch.config.AcceleratorConfig`), the model (its name and, since the architecture
record, the timm name and arguments that rebuild its workload), the device as it was loaded, the
utilisation caps and the ``predicted`` figures. :func:`read_design` validates it against the
schema (one line naming the file and the failing key), :func:`recorded_workload` rebuilds the
workload it was priced on, and :func:`differences` lists where a new prediction departs from the
recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from hwmodel.arch.config import AcceleratorConfig
from hwmodel.base.errors import UserError
from hwmodel.base.yamlio import read_json
from hwmodel.model.evaluation import UtilisationCaps
from hwmodel.target.device import Device, parse_device
from hwmodel.target.workload import Architecture, Workload, workload_from_architecture, workload_from_name

SCHEMA_PATH = Path(__file__).parent / "schemas" / "accelerator.schema.json"
#: the keys of ``predicted`` that are figures (what a re-run must reproduce)
FIGURES = ("latency_cycles", "latency_ms", "fps", "gops", "offchip_bytes", "resources", "feasible")


@dataclass(frozen=True)
class DesignFile:
    """One exported accelerator.json."""

    path: Path
    config: AcceleratorConfig
    model_name: str
    tokens: int
    macs: int
    architecture: Architecture | None
    device: Device
    caps: UtilisationCaps
    predicted: Mapping[str, Any]


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def is_design_document(raw: Any) -> bool:
    """An exported document (as opposed to a bare ``config`` mapping)."""
    return isinstance(raw, dict) and "config" in raw and "array" not in raw


def validate_document(raw: Any, source: str) -> None:
    """A one-line :class:`UserError` naming ``source`` and the failing key unless ``raw`` follows
    the accelerator.json schema."""
    error = best_match(Draft202012Validator(_schema()).iter_errors(raw))
    if error is not None:
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":  # name the missing key itself
            path += [str(k) for k in error.validator_value if k not in error.instance][:1]
        elif error.validator == "additionalProperties":  # name the unexpected key itself
            known = error.schema.get("properties", {})
            path += sorted(str(k) for k in error.instance if k not in known)[:1]
        where = ".".join(path) or "(top level)"
        message = error.message.splitlines()[0]
        if len(message) > 160:
            message = message[:157] + "..."
        raise UserError(f"{source}: key '{where}': {message} (schema {SCHEMA_PATH.name})")


def load_config(path: str | Path) -> AcceleratorConfig:
    """The accelerator config in ``path``: a bare config block, or an exported ``accelerator.json``
    (validated against its JSON Schema first: a damaged document is refused with one line naming
    the file and key)."""
    p = Path(path)
    raw = read_json(p, "accelerator config")
    if is_design_document(raw):
        validate_document(raw, str(p))
        raw = raw["config"]
    return AcceleratorConfig.from_dict(raw, str(p))


def read_design(path: Path, raw: Mapping[str, Any]) -> DesignFile:
    """The design document ``raw`` read from ``path``, validated against the schema."""
    source = str(path)
    validate_document(raw, source)
    model = raw["model"]
    arch = model.get("architecture")
    caps_raw = raw.get("caps")
    caps = (
        UtilisationCaps(**{f.name: float(caps_raw[f.name]) for f in fields(UtilisationCaps)})
        if caps_raw
        else UtilisationCaps()
    )
    return DesignFile(
        path=path,
        config=AcceleratorConfig.from_dict(raw["config"], f"{source}: config"),
        model_name=str(model["name"]),
        tokens=int(model["tokens"]),
        macs=int(model["macs"]),
        architecture=Architecture.from_dict(arch, f"{source}: model.architecture") if arch else None,
        device=parse_device(raw["device"], f"{source}: device"),
        caps=caps,
        predicted=raw["predicted"],
    )


def recorded_workload(design: DesignFile) -> Workload:
    """The workload the design was priced on: rebuilt from the recorded architecture (or, in a
    document without one, from the model's name); it must have the recorded tokens and MACs."""
    if design.architecture is not None:
        workload = workload_from_architecture(design.architecture, design.model_name)
    else:
        workload = workload_from_name(design.model_name)
    if (workload.tokens, workload.macs) != (design.tokens, design.macs):
        raise UserError(
            f"{design.path}: model '{design.model_name}' rebuilt with {workload.tokens} tokens and "
            f"{workload.macs:,} MACs but the file records {design.tokens} and {design.macs:,} "
            "(pass --model to price it on another model)"
        )
    return workload


def differences(predicted: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """``key new vs recorded`` for every figure (:data:`FIGURES`) that differs."""
    out: list[str] = []
    for key in FIGURES:
        new, old = predicted.get(key), recorded.get(key)
        if isinstance(new, Mapping) and isinstance(old, Mapping):
            out += [f"{key}.{k} {new[k]!r} vs {old.get(k)!r}" for k in new if new[k] != old.get(k)]
        elif new != old:
            out.append(f"{key} {new!r} vs {old!r}")
    return out
