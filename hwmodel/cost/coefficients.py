"""The versioned resource table the analytic model reads (``hwmodel/calibration/coefficients.json``).

Data, not literals in code: ``python -m hwmodel.calibrate`` refits the LUT (and the units' FF)
coefficients from Yosys synthesis of the PyRTL parts; every part's cost reads its section here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hwmodel.arch.intops import VARIANTS
from hwmodel.base.errors import UserError

COEFFICIENTS_PATH = Path(__file__).parents[1] / "calibration" / "coefficients.json"


def nonlinear_section(variant: str) -> str:
    """The ``coefficients.json`` section of the non-linear units built with kernel ``variant``
    (:data:`hwmodel.arch.intops.VARIANTS`): ``nonlinear`` for ``poly``, ``nonlinear_<variant>``
    for the others (``nonlinear_shift``); each is Yosys family → kind → ``lut`` / ``ff`` →
    coefficient per unit feature."""
    return "nonlinear" if variant == "poly" else f"nonlinear_{variant}"


@dataclass(frozen=True, eq=False)  # hashed by identity: engine costs are memoised per table
class Coefficients:
    """The versioned resource table the analytic model reads."""

    version: str
    yosys_version: str | None
    array: dict[str, dict[str, float]]  # Yosys family → fitted LUT coefficients of the engines
    #: kernel variant → Yosys family → unit kind → ``lut`` / ``ff`` → fitted coefficient per unit
    #: feature (:func:`hwmodel.cost.nonlinear.unit_feature_names`); the JSON holds each variant in
    #: its own section (:func:`nonlinear_section`)
    nonlinear: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]]
    #: Yosys family → fitted LUT coefficient of the tile controller per feature
    #: (:data:`hwmodel.cost.controller.CONTROLLER_FEATURES`)
    controller: dict[str, dict[str, float]]
    #: the vendor IP we instantiate but do not generate (AXI DMA, interconnect): ``lut``, ``ff``,
    #: ``bram36``, ``dsp`` and the DRAM read latency ``dram_latency_ns``, each with its ``source``
    #: in the JSON
    vendor_ip: dict[str, float]

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> Coefficients:
        return Coefficients(
            version=str(raw["version"]),
            yosys_version=raw.get("yosys_version"),
            array={fam: {k: float(v) for k, v in c.items()} for fam, c in raw["array"].items()},
            nonlinear={
                variant: {
                    fam: {
                        kind: {part: {k: float(v) for k, v in c.items()} for part, c in parts.items()}
                        for kind, parts in kinds.items()
                    }
                    for fam, kinds in raw[nonlinear_section(variant)].items()
                }
                for variant in VARIANTS
                if nonlinear_section(variant) in raw
            },
            controller={
                fam: {k: float(v) for k, v in c.items()} for fam, c in raw.get("controller", {}).items()
            },
            vendor_ip={k: float(v["value"]) for k, v in raw["vendor_ip"].items() if isinstance(v, dict)},
        )

    def dram_latency_cycles(self, freq_mhz: float) -> int:
        """Accelerator cycles at ``freq_mhz`` from a DRAM read request to its first data beat
        (``vendor_ip.dram_latency_ns``, rounded up to whole cycles)."""
        return math.ceil(self.vendor_ip["dram_latency_ns"] * freq_mhz / 1000.0 - 1e-9)

    def nonlinear_for(
        self, synth_family: str, kind: str, variant: str = "poly"
    ) -> dict[str, dict[str, float]]:
        """The fitted resource coefficients of a non-linear unit of kernel ``variant`` for
        ``synth_family``."""
        try:
            return self.nonlinear[variant][synth_family][kind]
        except KeyError:
            raise UserError(
                f"coefficients {self.version}: no {kind} unit calibration ({variant} kernels) for Yosys "
                f"family {synth_family!r} (run python -m hwmodel.calibrate --nonlinear)"
            ) from None

    def controller_for(self, synth_family: str) -> dict[str, float]:
        """The tile controller's fitted LUT coefficients for ``synth_family``."""
        try:
            return self.controller[synth_family]
        except KeyError:
            raise UserError(
                f"coefficients {self.version}: no tile controller calibration for Yosys family "
                f"{synth_family!r} (run python -m hwmodel.calibrate --controller)"
            ) from None

    def array_for(self, synth_family: str) -> dict[str, float]:
        """The engine coefficients fitted to Yosys's synthesis for ``synth_family``."""
        try:
            return self.array[synth_family]
        except KeyError:
            known = ", ".join(sorted(self.array))
            raise UserError(
                f"coefficients {self.version}: no engine calibration for Yosys family {synth_family!r} "
                f"(calibrated: {known}; run python -m hwmodel.calibrate)"
            ) from None


@lru_cache(maxsize=4)
def load_coefficients(path: Path = COEFFICIENTS_PATH) -> Coefficients:
    """Read (once per path) the coefficient table."""
    with open(path, encoding="utf-8") as fh:
        return Coefficients.from_dict(json.load(fh))


def fitted(coef: dict[str, float], feats: dict[str, float]) -> float:
    """A fitted linear model: Σ coefficient · feature."""
    return sum(coef.get(name, 0.0) * value for name, value in feats.items())
