"""Objectives a study may optimise, each with its direction and unit (one registry)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwmodel.model.evaluation import DesignReport


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"
    label: str  # axis label with unit
    needs_accuracy: bool = False


def resource_use(report: DesignReport) -> float:
    """The binding resource: the largest utilisation fraction over DSP, LUT, FF and BRAM36."""
    return max(report.utilisation.values())


OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", "maximize", "proxy accuracy score (higher is better)", True),
    "fps": Objective("fps", "maximize", "throughput [frames/s]"),
    "resources": Objective("resources", "minimize", "resource use [max of DSP/LUT/FF/BRAM fraction]"),
    "latency_ms": Objective("latency_ms", "minimize", "latency [ms]"),
    "gops": Objective("gops", "maximize", "throughput [GOP/s]"),
    "dsp": Objective("dsp", "minimize", "DSP slices"),
    "lut": Objective("lut", "minimize", "LUTs"),
}

#: Axis labels of the accuracy objective per proxy kind (``codesign.proxy``).
PROXY_LABELS: dict[str, str] = {
    "linkl": "proxy: −KL(FP32 ‖ quantized), linearised (higher is better)",
    "linkl_topk": "proxy: −KL(FP32 ‖ quantized), linearised, top-k classes (higher is better)",
    "fit": "proxy: −Fisher-weighted quantization noise (higher is better)",
    "auto": "proxy (higher is better)",
    "kl": "proxy: −KL(FP32 ‖ quantized) (higher is better)",
    "agree": "proxy: top-1 agreement with FP32 [%]",
    "ce": "proxy: −cross-entropy (higher is better)",
}

HARDWARE_VALUES: dict[str, Callable[[DesignReport], float]] = {
    "fps": lambda r: r.fps,
    "resources": resource_use,
    "latency_ms": lambda r: r.latency_ms,
    "gops": lambda r: r.gops,
    "dsp": lambda r: float(r.resources.dsp),
    "lut": lambda r: float(r.resources.lut),
}
