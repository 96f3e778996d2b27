"""A finished run folder read back: its summary, an exported design, and the study's model and
data, for the commands that work on a run after the search (``codesign.report``,
``codesign.finetune``). Bad or damaged folders are one-line :class:`UserError`s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codesign.context import load_study_model, study_evaluator
from codesign.errors import UserError
from codesign.models import DEFAULT_WORKLOAD_NAME
from codesign.proxy import Evaluator
from codesign.quant import QuantConfig
from codesign.study import load_study
from hwmodel.base.yamlio import read_json

#: What every run's summary.json holds (the report prints these).
SUMMARY_KEYS = frozenset(
    {"trials", "feasible", "pareto", "hypervolume", "baseline_hypervolume", "fps_target"}
)


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` of a run folder (checked to be one ``codesign.search`` writes)."""
    path = run_dir / "summary.json"
    if not path.exists():
        raise UserError(f"{path} not found (is {run_dir} a run folder of codesign.search?)")
    info = read_json(path, "run summary")
    if not isinstance(info, dict) or not set(info) >= SUMMARY_KEYS:
        missing = sorted(SUMMARY_KEYS - set(info)) if isinstance(info, dict) else sorted(SUMMARY_KEYS)
        raise UserError(f"{path}: not a codesign.search summary (missing {', '.join(missing)})")
    return info


def design_dir(run_dir: Path, trial: int, info: dict[str, Any]) -> Path:
    """``designs/<trial>/`` of an exported design (one line listing the exported ones otherwise)."""
    folder = run_dir / "designs" / str(trial)
    if not (folder / "accelerator.json").is_file():
        avail = ", ".join(str(n) for n in info.get("pareto_trials", [])) or "none"
        raise UserError(f"trial {trial} has no exported design in {run_dir}/designs (Pareto trials: {avail})")
    return folder


def load_run_evaluator(run_dir: Path, info: dict[str, Any], torch_device: str | None = None) -> Evaluator:
    """The real evaluator of a run: the study's FP32 model, its data splits and the calibration
    the run quantized its designs with (``quantized(config)`` is the exported post-training model),
    on the study's torch device or ``torch_device``."""
    if info.get("hw_only"):
        raise UserError(f"{run_dir} is a hardware-only run: its designs have no quantized model")
    study_file = info.get("study_file")
    if not isinstance(study_file, str):
        raise UserError(f"{run_dir / 'summary.json'}: no 'study_file' (run codesign.search again)")
    study = load_study(Path(study_file))
    if info.get("model") == DEFAULT_WORKLOAD_NAME:
        study = study.with_model_name("default")
    if isinstance(info.get("seed"), int):
        study = study.with_overrides(seed=info["seed"])
    study = study.with_overrides(torch_device=torch_device)
    loaded = load_study_model(study)
    if loaded is None:
        raise UserError(f"study '{study.name}' ({study_file}) names no checkpoint and data for its model")
    model, splits = loaded
    # the proxy kind only decides what the evaluator precomputes: 'kl' precomputes nothing
    return study_evaluator(study, model, splits, proxy_kind="kl")


def read_design_quant(folder: Path) -> tuple[dict[str, Any], QuantConfig]:
    """``quant.json`` of an exported design and its exact :class:`QuantConfig`."""
    doc = read_json(folder / "quant.json", "quant")
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise UserError(f"{folder / 'quant.json'}: not a quant.json that codesign.search exports")
    return doc, QuantConfig.from_dict(doc["config"])
