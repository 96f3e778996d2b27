"""Typed accelerator configuration: array shape, clock, and per-layer precision and tiling.

JSON form (``--config accel.json``, also the ``config`` block of an exported accelerator.json)::

    {"schema_version": 2, "freq_mhz": 300,
     "array": {"rows": 32, "cols": 64, "pot_cols": 16, "packing": 2},
     "acc_bits": null, "nonlinear_lanes": 16, "nonlinear_kernels": {"softmax": "shift"},
     "nonlinear_kind_lanes": {"softmax": 128},
     "default": {"weight_bits": 8, "act_bits": 8, "pot_ratio": 0.0, "tm": 256, "tn": 96, "tk": 768},
     "layers": {"blocks.0.mlp.fc1": {"weight_bits": 4, "pot_ratio": 0.5}}}

Per-layer entries override the default key by key (default → layer name, as hls4ml layers its
precision). The engine (:mod:`hwmodel.arch.engine`) is weight-stationary: ``rows`` PEs down each column
walk the reduction (k); ``pot_cols`` of the ``cols`` columns are power-of-two (shift-add) PEs,
the rest DSP slices packing up to ``packing`` (1, 2 or 4) MACs; a layer's ``pot_ratio`` of its
output channels runs on the PoT columns. ``acc_bits`` is the width of the partial sums (``null``
or absent: exact for the deepest layer of the workload, as the search and the default design
use). Tile sizes (tokens, channels, depth) larger than a layer dimension are clipped to it.
``nonlinear_kernels`` picks the kernel each non-linear unit computes, per kind (``softmax``,
``layernorm``, ``gelu``) one of :data:`hwmodel.arch.intops.VARIANTS` (``poly``: polynomial exp /
erf with multipliers; ``shift``: shift-and-add, no DSP slice); a kind not named is ``poly``, and
an all-``poly`` config leaves the key out of :meth:`AcceleratorConfig.to_dict`. Each unit has
``nonlinear_lanes`` lanes unless ``nonlinear_kind_lanes`` gives its kind its own count (left out
of :meth:`AcceleratorConfig.to_dict` when empty).
Schema 1 described the output-stationary v1 engine and is not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from hwmodel.arch.intops import KERNELS, VARIANTS
from hwmodel.base.errors import UserError

SCHEMA_VERSION = 2
PACKINGS = (1, 2, 4)
SUPPORTED_BITS = range(1, 33)
#: The non-linear unit kinds whose kernel a design chooses (:data:`hwmodel.arch.intops.KERNELS`).
NONLINEAR_KINDS: tuple[str, ...] = tuple(KERNELS)
#: :data:`NONLINEAR_KINDS` in name order (the order of :attr:`AcceleratorConfig.lanes_key`).
_SORTED_KINDS = tuple(sorted(NONLINEAR_KINDS))
#: The kernel of a kind the config does not name.
DEFAULT_KERNEL = "poly"


def by_kind(raw: Any, where: str, what: str) -> Mapping[Any, Any]:
    """``raw`` checked as a mapping keyed by non-linear op kinds (:data:`NONLINEAR_KINDS`) of
    ``what``: otherwise a one-line :class:`UserError` naming ``where``, the key and the allowed
    values."""
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: expected a mapping of op kind to {what}, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in NONLINEAR_KINDS)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(NONLINEAR_KINDS)})")
    return raw


def kind_lanes(raw: Mapping[str, int], where: str) -> dict[str, int]:
    """Per-kind lane counts (a partial mapping kind → lanes, 1 … 1024), checked: an unknown kind
    or a bad count is a one-line :class:`UserError` naming ``where``, the key and the allowed values."""
    out: dict[str, int] = {}
    for kind, lanes in by_kind(raw, where, "lanes").items():
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 1024:
            raise UserError(f"{where}: key '{kind}' must be an integer in [1, 1024], got {lanes!r}")
        out[str(kind)] = lanes
    return dict(sorted(out.items()))


def kernel_choice(raw: Mapping[str, str], where: str) -> dict[str, str]:
    """Every kind's kernel variant from a (partial) mapping kind → variant, checked: a kind not
    named is :data:`DEFAULT_KERNEL`; an unknown kind or variant is a one-line :class:`UserError`
    naming ``where``, the key and the allowed values."""
    out = dict.fromkeys(NONLINEAR_KINDS, DEFAULT_KERNEL)
    for kind, variant in by_kind(raw, where, "kernel variant").items():
        if not isinstance(variant, str) or variant not in KERNELS[kind]:
            raise UserError(f"{where}: key '{kind}' must be one of {', '.join(VARIANTS)}, got {variant!r}")
        out[kind] = variant
    return out


@dataclass(frozen=True)
class LayerHw:
    """Precision and tiling of one GEMM layer as the hardware sees it."""

    weight_bits: int = 8
    act_bits: int = 8
    pot_ratio: float = 0.0
    tm: int = 64
    tn: int = 64
    tk: int = 256


@dataclass(frozen=True)
class AcceleratorConfig:
    """One accelerator design point."""

    freq_mhz: float
    rows: int
    cols: int
    pot_cols: int = 0
    #: width of the partial sums; None: exact for the deepest layer (derived from the workload)
    acc_bits: int | None = None
    packing: int = 2
    nonlinear_lanes: int = 16
    default: LayerHw = field(default_factory=LayerHw)
    layers: Mapping[str, LayerHw] = field(default_factory=dict)
    #: the kernel variant of each non-linear unit, kind → variant (every kind; :func:`kernel_choice`)
    #: (a partial mapping is completed with :data:`DEFAULT_KERNEL`)
    nonlinear_kernels: Mapping[str, str] = field(default_factory=dict)
    #: lanes of the units of these kinds (the others have :attr:`nonlinear_lanes`)
    nonlinear_kind_lanes: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "nonlinear_kernels", kernel_choice(self.nonlinear_kernels, "nonlinear_kernels")
        )
        object.__setattr__(
            self, "nonlinear_kind_lanes", kind_lanes(self.nonlinear_kind_lanes, "nonlinear_kind_lanes")
        )

    def lanes_for(self, kind: str) -> int:
        """The lanes of the unit of non-linear op ``kind``."""
        return self.nonlinear_kind_lanes.get(kind, self.nonlinear_lanes)

    @property
    def lanes_key(self) -> tuple[tuple[str, int], ...]:
        """Every kind's lanes as a sorted tuple of (kind, lanes) (hashable)."""
        return tuple((kind, self.lanes_for(kind)) for kind in _SORTED_KINDS)

    @property
    def kernels_key(self) -> tuple[tuple[str, str], ...]:
        """:attr:`nonlinear_kernels` as a sorted tuple of (kind, variant) (hashable)."""
        return tuple(sorted(self.nonlinear_kernels.items()))

    @property
    def cols_fixed(self) -> int:
        return self.cols - self.pot_cols

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def for_layer(self, name: str) -> LayerHw:
        return self.layers.get(name, self.default)

    def to_dict(self) -> dict[str, Any]:
        default = asdict(self.default)
        return {
            "schema_version": SCHEMA_VERSION,
            "freq_mhz": self.freq_mhz,
            "array": {
                "rows": self.rows,
                "cols": self.cols,
                "pot_cols": self.pot_cols,
                "packing": self.packing,
            },
            "acc_bits": self.acc_bits,
            "nonlinear_lanes": self.nonlinear_lanes,
            # only when some kernel is not poly: all-poly documents and candidate keys stay as they were
            **(
                {"nonlinear_kernels": dict(sorted(self.nonlinear_kernels.items()))}
                if any(v != DEFAULT_KERNEL for v in self.nonlinear_kernels.values())
                else {}
            ),
            **(
                {"nonlinear_kind_lanes": dict(self.nonlinear_kind_lanes)} if self.nonlinear_kind_lanes else {}
            ),
            "default": default,
            "layers": {
                name: {k: v for k, v in asdict(hw).items() if v != default[k]}
                for name, hw in self.layers.items()
            },
        }

    @staticmethod
    def from_dict(raw: Any, source: str = "config") -> AcceleratorConfig:
        return _parse_config(raw, source)


def _check_keys(raw: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    return raw


def _int(raw: Mapping[str, Any], key: str, where: str, lo: int, hi: int | None = None) -> int:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise UserError(f"{where}: key '{key}' must be an integer {rng}, got {v!r}")
    return v


def _number(raw: Mapping[str, Any], key: str, where: str, lo: float, hi: float) -> float:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise UserError(f"{where}: key '{key}' must be a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def _parse_layer(raw: Any, base: LayerHw, where: str) -> LayerHw:
    allowed = {f.name for f in fields(LayerHw)}
    raw = _check_keys(raw, allowed, where)
    out: dict[str, Any] = {}
    for key in ("weight_bits", "act_bits"):
        if key in raw:
            out[key] = _int(raw, key, where, 1, 32)
    for key in ("tm", "tn", "tk"):
        if key in raw:
            out[key] = _int(raw, key, where, 1)
    if "pot_ratio" in raw:
        out["pot_ratio"] = _number(raw, "pot_ratio", where, 0.0, 1.0)
    return replace(base, **out)


def _parse_config(raw: Any, source: str) -> AcceleratorConfig:
    top = {
        "schema_version",
        "freq_mhz",
        "array",
        "acc_bits",
        "nonlinear_lanes",
        "nonlinear_kernels",
        "nonlinear_kind_lanes",
        "default",
        "layers",
    }
    raw = _check_keys(raw, top, source)
    for key in ("freq_mhz", "array"):
        if key not in raw:
            raise UserError(f"{source}: missing key '{key}'")
    version = raw.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        hint = " (version 1 described the output-stationary v1 engine; export the design again)"
        raise UserError(
            f"{source}: schema_version {version!r} not supported (expected {SCHEMA_VERSION})"
            + (hint if version == 1 else "")
        )
    freq = _number(raw, "freq_mhz", source, 1.0, 2000.0)
    arr = _check_keys(raw["array"], {"rows", "cols", "pot_cols", "packing"}, f"{source}: array")
    for key in ("rows", "cols"):
        if key not in arr:
            raise UserError(f"{source}: array: missing key '{key}'")
    rows = _int(arr, "rows", f"{source}: array", 1, 4096)
    cols = _int(arr, "cols", f"{source}: array", 1, 4096)
    pot_cols = _int(arr, "pot_cols", f"{source}: array", 0, cols) if "pot_cols" in arr else 0
    packing = _int(arr, "packing", f"{source}: array", 1, 4) if "packing" in arr else 2
    if packing not in PACKINGS:
        raise UserError(f"{source}: array: key 'packing' must be one of 1, 2, 4, got {packing}")
    acc_bits = _int(raw, "acc_bits", source, 4, 64) if raw.get("acc_bits") is not None else None
    lanes = _int(raw, "nonlinear_lanes", source, 1, 1024) if "nonlinear_lanes" in raw else 16
    kernels = kernel_choice(raw.get("nonlinear_kernels", {}), f"{source}: nonlinear_kernels")
    per_kind = kind_lanes(raw.get("nonlinear_kind_lanes", {}), f"{source}: nonlinear_kind_lanes")
    default = _parse_layer(raw.get("default", {}), LayerHw(), f"{source}: default")
    layers_raw = raw.get("layers", {})
    if not isinstance(layers_raw, dict):
        raise UserError(f"{source}: key 'layers' must map layer names to settings")
    layers = {
        str(name): _parse_layer(v, default, f"{source}: layers.{name}") for name, v in layers_raw.items()
    }
    return AcceleratorConfig(
        freq_mhz=freq,
        rows=rows,
        cols=cols,
        pot_cols=pot_cols,
        acc_bits=acc_bits,
        packing=packing,
        nonlinear_lanes=lanes,
        default=default,
        layers=layers,
        nonlinear_kernels=kernels,
        nonlinear_kind_lanes=per_kind,
    )
