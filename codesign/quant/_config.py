"""Typed quantization settings: ``LayerQuant``, ``QuantConfig`` and precision-string parsing.

Precision strings are parsed once, here, at the edge (case-insensitive):

==============  =================================================================
``W4A8``        4-bit fixed-point weights, 8-bit activations (pot_ratio 0)
``W4A8P0.5``    same, half of the output channels power-of-two (mixed scheme)
``pot4A8``      4-bit power-of-two weights (pot_ratio 1), 8-bit activations
``pot4``        4-bit power-of-two weights, float activations
``W8``          8-bit fixed-point weights, float activations
``fp32``        no quantization (``W32A32``)
==============  =================================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from codesign.errors import UserError
from hwmodel.arch.config import DEFAULT_KERNEL, kernel_choice
from hwmodel.base.yamlio import read_text_file
from hwmodel.target.vit import is_matmul_layer

FLOAT_BITS = 32
ALLOWED_BITS = (*range(2, 17), FLOAT_BITS)
MAX_POT_BITS = 8

ActCalibration = Literal["max", "percentile", "mse"]
WeightCalibration = Literal["max", "mse"]
SoftmaxScheme = Literal["uniform", "log2"]
NonlinearMode = Literal["float", "int"]
ACT_CALIBRATIONS: tuple[str, ...] = ("max", "percentile", "mse")
WEIGHT_CALIBRATIONS: tuple[str, ...] = ("max", "mse")
SOFTMAX_SCHEMES: tuple[str, ...] = ("uniform", "log2")
#: Softmax, LayerNorm and GELU in float, or as the integer kernels of :mod:`hwmodel.arch.intops`.
NONLINEAR_MODES: tuple[str, ...] = ("float", "int")


@dataclass(frozen=True)
class LayerQuant:
    """Precision of one GEMM layer. Bits 32 mean "not quantized" (float).

    For weight layers ``weight_bits``/``pot_ratio`` apply to the weight and ``act_bits`` to the
    input activation. For ``qk`` ``act_bits`` quantizes Q and ``weight_bits`` K; for ``sv``
    ``act_bits`` quantizes the softmax probabilities and ``weight_bits`` V (pot_ratio must be 0).
    """

    weight_bits: int
    act_bits: int
    pot_ratio: float = 0.0

    def __post_init__(self) -> None:
        for key in ("weight_bits", "act_bits"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v not in ALLOWED_BITS:
                raise UserError(f"{key}={v!r}: allowed 2..16 or 32 (float)")
        r = self.pot_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= float(r) <= 1.0:
            raise UserError(f"pot_ratio={r!r}: allowed a number in [0, 1]")
        object.__setattr__(self, "pot_ratio", float(r))
        if self.pot_ratio > 0 and self.weight_bits > MAX_POT_BITS:
            raise UserError(
                f"pot_ratio={self.pot_ratio} needs weight_bits 2..{MAX_POT_BITS}, got {self.weight_bits}"
            )

    @property
    def is_float(self) -> bool:
        return self.weight_bits == FLOAT_BITS and self.act_bits == FLOAT_BITS

    def to_string(self) -> str:
        if self.pot_ratio == 1.0 and self.weight_bits != FLOAT_BITS:
            return f"pot{self.weight_bits}A{self.act_bits}"
        s = f"W{self.weight_bits}A{self.act_bits}"
        return s if self.pot_ratio == 0 else f"{s}P{self.pot_ratio:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight_bits": self.weight_bits,
            "act_bits": self.act_bits,
            "pot_ratio": self.pot_ratio,
        }


_PRECISION = re.compile(
    r"^(?:(?P<w>w)(?P<wb>\d+)|(?P<pot>pot)(?P<pb>\d+))(?:a(?P<ab>\d+))?(?:p(?P<r>\d*\.?\d+))?$"
)


def parse_precision(text: str) -> LayerQuant:
    """``"W4A8"`` → ``LayerQuant(4, 8, 0.0)``; see the module docstring for the grammar."""
    s = str(text).strip().lower().replace("_", "").replace("-", "")
    if s in ("fp32", "float", "float32"):
        return LayerQuant(FLOAT_BITS, FLOAT_BITS, 0.0)
    m = _PRECISION.match(s)
    if m is None:
        raise UserError(f"precision {text!r}: expected e.g. W4A8, W4A8P0.5, pot4A8, pot4, W8 or fp32")
    act = int(m["ab"]) if m["ab"] else FLOAT_BITS
    if m["pot"]:
        if m["r"]:
            raise UserError(f"precision {text!r}: potN is all power-of-two, drop the P<ratio>")
        return LayerQuant(int(m["pb"]), act, 1.0)
    return LayerQuant(int(m["wb"]), act, float(m["r"]) if m["r"] else 0.0)


def _as_layer_quant(value: Any, where: str) -> LayerQuant:
    if isinstance(value, LayerQuant):
        return value
    if isinstance(value, str):
        try:
            return parse_precision(value)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from exc
    if isinstance(value, Mapping):
        allowed = {"weight_bits", "act_bits", "pot_ratio"}
        extra = sorted(set(value) - allowed)
        if extra or not {"weight_bits", "act_bits"} <= set(value):
            raise UserError(f"{where}: keys must be weight_bits, act_bits[, pot_ratio]; got {sorted(value)}")
        try:
            return LayerQuant(value["weight_bits"], value["act_bits"], value.get("pot_ratio", 0.0))
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from exc
    raise UserError(f"{where}: expected a precision string or a mapping, got {type(value).__name__}")


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{key}={value!r}: allowed {', '.join(allowed)}")


@dataclass(frozen=True)
class QuantConfig:
    """Per-layer quantization of a ViT: a default plus per-layer-name overrides.

    ``for_layer(name)`` returns the override for ``name`` if any, else the default; for the
    activation matmuls (``qk``/``sv``) the default's bits apply with pot_ratio 0 (the scheme ratio
    is a weight-layer choice). Methods: ``act_calibration`` (max / percentile / mse, per tensor),
    ``weight_calibration`` (max / mse, per output channel), ``softmax`` (uniform / log2 for the
    post-softmax probabilities), ``nonlinear`` (float / int: softmax, LayerNorm and GELU in float or
    as the integer kernels of :mod:`hwmodel.arch.intops` on 16-bit fixed-point codes), ``kernels``
    (per op kind, the kernel variant of :data:`hwmodel.arch.intops.KERNELS` — ``poly`` or the
    shift-and-add ``shift`` — that ``nonlinear: int`` runs and the accelerator's units compute;
    a kind not named is ``poly``). With ``nonlinear: float`` the model runs the float operators
    whatever ``kernels`` says: the kernels are then the hardware's choice alone.
    """

    default: LayerQuant
    layers: Mapping[str, LayerQuant] = field(default_factory=dict)
    act_calibration: ActCalibration = "mse"
    weight_calibration: WeightCalibration = "mse"
    softmax: SoftmaxScheme = "uniform"
    nonlinear: NonlinearMode = "float"
    #: kind → kernel variant (every kind once built; :func:`hwmodel.arch.config.kernel_choice`)
    kernels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.default, LayerQuant):
            object.__setattr__(self, "default", _as_layer_quant(self.default, "default"))
        items = {str(k): _as_layer_quant(v, f"layers.{k}") for k, v in sorted(dict(self.layers).items())}
        for name, lq in items.items():
            if is_matmul_layer(name) and lq.pot_ratio != 0:
                raise UserError(f"layers.{name}: pot_ratio must be 0 for qk/sv, got {lq.pot_ratio}")
        object.__setattr__(self, "layers", MappingProxyType(items))
        _check_choice("act_calibration", self.act_calibration, ACT_CALIBRATIONS)
        _check_choice("weight_calibration", self.weight_calibration, WEIGHT_CALIBRATIONS)
        _check_choice("softmax", self.softmax, SOFTMAX_SCHEMES)
        _check_choice("nonlinear", self.nonlinear, NONLINEAR_MODES)
        object.__setattr__(self, "kernels", MappingProxyType(kernel_choice(self.kernels, "kernels")))

    @property
    def all_poly(self) -> bool:
        """Every kind runs the ``poly`` kernel (the default; :meth:`to_dict` then omits ``kernels``)."""
        return all(v == DEFAULT_KERNEL for v in self.kernels.values())

    def __hash__(self) -> int:
        return hash(
            (
                self.default,
                tuple(self.layers.items()),
                self.act_calibration,
                self.weight_calibration,
                self.softmax,
                self.nonlinear,
                tuple(sorted(self.kernels.items())),
            )
        )

    def for_layer(self, name: str) -> LayerQuant:
        lq = self.layers.get(name)
        if lq is not None:
            return lq
        if is_matmul_layer(name) and self.default.pot_ratio != 0:
            return LayerQuant(self.default.weight_bits, self.default.act_bits, 0.0)
        return self.default

    @classmethod
    def uniform(cls, precision: str | LayerQuant, **methods: Any) -> QuantConfig:
        """The same precision everywhere, e.g. ``QuantConfig.uniform("W8A8")``."""
        return cls(_as_layer_quant(precision, "precision"), {}, **methods)

    def with_layers(self, overrides: Mapping[str, LayerQuant | str]) -> QuantConfig:
        merged: dict[str, Any] = dict(self.layers)
        merged.update(overrides)
        return QuantConfig(
            self.default,
            merged,
            self.act_calibration,
            self.weight_calibration,
            self.softmax,
            self.nonlinear,
            self.kernels,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default.to_dict(),
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
            "act_calibration": self.act_calibration,
            "weight_calibration": self.weight_calibration,
            "softmax": self.softmax,
            "nonlinear": self.nonlinear,
            # only when some kernel is not poly: all-poly documents and candidate keys stay as they were
            **({"kernels": dict(sorted(self.kernels.items()))} if not self.all_poly else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "quant config") -> QuantConfig:
        """A config from its :meth:`to_dict` form (``source`` names it in errors)."""
        if not isinstance(raw, Mapping):
            raise UserError(f"quant config: expected a JSON object, got {type(raw).__name__}")
        allowed = {
            "default",
            "layers",
            "act_calibration",
            "weight_calibration",
            "softmax",
            "nonlinear",
            "kernels",
        }
        extra = sorted(set(raw) - allowed)
        if extra:
            raise UserError(f"quant config: unknown keys {extra}; allowed {sorted(allowed)}")
        if "default" not in raw:
            raise UserError("quant config: missing key 'default'")
        layers = raw.get("layers", {})
        if not isinstance(layers, Mapping):
            raise UserError("quant config: 'layers' must be an object {layer name: precision}")
        return cls(
            _as_layer_quant(raw["default"], "default"),
            {str(k): _as_layer_quant(v, f"layers.{k}") for k, v in layers.items()},
            raw.get("act_calibration", "mse"),
            raw.get("weight_calibration", "mse"),
            raw.get("softmax", "uniform"),
            raw.get("nonlinear", "float"),
            kernel_choice(raw.get("kernels", {}), f"{source}: kernels"),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "quant config") -> QuantConfig:
        """A config from JSON text: its :meth:`to_dict` form, or an exported ``quant.json``
        (the config under ``"config"``); ``source`` names the text in errors."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
        if isinstance(raw, Mapping) and "config" in raw and "default" not in raw:
            raw = raw["config"]  # an exported quant.json (codesign.export)
        elif isinstance(raw, Mapping) and "Model" in raw and "default" not in raw:
            raw = _from_layered(raw, source)  # the Model / LayerName layout README documents
        return cls.from_dict(raw, source)

    @classmethod
    def load(cls, path: Path) -> QuantConfig:
        """A config from a JSON file (see :meth:`from_json`)."""
        return cls.from_json(read_text_file(path, "quant config"), str(path))

    @classmethod
    def parse(cls, text: str) -> QuantConfig:
        """A uniform precision (``W8A8``) or the path of a quant config JSON file (``--hw-only``)."""
        path = Path(text)
        if path.suffix == ".json" or path.exists():
            return cls.load(path)
        return cls(parse_precision(text), {})

    def __reduce__(self) -> tuple[type[QuantConfig], tuple[Any, ...]]:
        # ``layers`` is a read-only mapping proxy, which pickle cannot copy: rebuild from a dict.
        return (
            QuantConfig,
            (
                self.default,
                dict(self.layers),
                self.act_calibration,
                self.weight_calibration,
                self.softmax,
                self.nonlinear,
                dict(self.kernels),
            ),
        )


_METHOD_KEYS = ("act_calibration", "weight_calibration", "softmax", "nonlinear", "kernels")
#: The keys of one precision block of the Model / LayerName layout that the config reads.
_LAYERED_KEYS = ("weight_bits", "act_bits", "pot_ratio")


def _from_layered(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The :meth:`QuantConfig.to_dict` form of a quant.json in the Model / LayerName layout
    (``Model``: the default precision block, ``LayerName``: per-layer blocks, optional
    ``methods``); each block's ``weight_bits``, ``act_bits`` and ``pot_ratio`` are read, its
    ``Precision`` strings are descriptive only."""

    def block(b: Any, where: str) -> dict[str, Any]:
        if not isinstance(b, Mapping):
            raise UserError(f"{source}: {where}: expected a mapping, got {type(b).__name__}")
        missing = [k for k in _LAYERED_KEYS[:2] if k not in b]
        if missing:
            raise UserError(f"{source}: {where}: missing key '{missing[0]}'")
        return {k: b[k] for k in _LAYERED_KEYS if k in b}

    layers = raw.get("LayerName", {})
    if not isinstance(layers, Mapping):
        raise UserError(f"{source}: LayerName: expected a mapping of layer names")
    methods = raw.get("methods", {})
    if not isinstance(methods, Mapping):
        raise UserError(f"{source}: methods: expected a mapping")
    return {
        "default": block(raw["Model"], "Model"),
        "layers": {str(k): block(v, f"LayerName.{k}") for k, v in layers.items()},
        **{k: methods[k] for k in _METHOD_KEYS if k in methods},
    }
