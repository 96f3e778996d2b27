"""Search spaces: what a trial may choose (``search_spaces/*.yaml``), and how a trial's
parameters become a candidate design (a :class:`QuantConfig` plus an :class:`AcceleratorConfig`).

Quantization is chosen per *group* of GEMM layers: one group for the whole model
(``granularity: model``), one per transformer block (``block``; the patch embedding and the head
are groups of their own) or one per layer (``layer``). A group draws weight bits, activation bits
and a PoT ratio; the activation×activation matmuls (qk, sv) of a group use its activation width for
both operands and no PoT. Layers in ``fixed_layers`` are held at the given precision.

Hardware: array rows (the reduction each column holds) and cols, the share of the columns built
as PoT PEs, the DSP packing (1, 2 or 4 MACs per slice), clock, tiles (Tm in tokens, Tn in whole
folds of the array's channels, Tk in whole folds of its rows) and non-linear lanes. The partial
sums are as wide as the deepest layer needs (derived, not searched). A PoT share of 0 makes
every layer fixed-point; a non-zero share keeps at least one fixed-point column (qk/sv need it);
a design whose quantization puts no channel on PoT has no PoT columns, whatever the share (the
share's columns would sit unused).

Non-linear kernels (``quant.kernels``, per op kind ``softmax`` / ``layernorm`` / ``gelu`` one
variant of :data:`hwmodel.arch.intops.VARIANTS` or a list to search; parameters
``q.kernel.<kind>``): a trial's choice goes into both halves of the candidate, the QuantConfig's
``kernels`` (what ``nonlinear: int`` runs) and the AcceleratorConfig's ``nonlinear_kernels`` (what
the units compute and cost). The hardware always runs integer units, so it follows the choice
with ``nonlinear: float`` too, where the accuracy is then that of the float operators (the
kernels are a hardware choice alone). The kernel parameters are drawn in hardware-only searches
as well (they are hardware), and a kind the space does not name keeps ``poly`` (or, with a fixed
quantization, that config's kernel).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast

from codesign.errors import UserError
from codesign.quant import (
    NONLINEAR_MODES,
    LayerQuant,
    NonlinearMode,
    QuantConfig,
    is_matmul_layer,
    parse_precision,
)
from codesign.yamlio import check_keys, choices, read_yaml_mapping
from hwmodel.arch.config import DEFAULT_KERNEL, NONLINEAR_KINDS, AcceleratorConfig, LayerHw, by_kind
from hwmodel.arch.intops import VARIANTS

DEFAULT_SPACE_FILE = Path(__file__).resolve().parents[1] / "search_spaces" / "default.yaml"
GRANULARITIES = ("model", "block", "layer")
QUANT_KEYS = ("granularity", "weight_bits", "act_bits", "pot_ratio", "fixed_layers", "nonlinear", "kernels")
HW_KEYS = (
    "rows",
    "cols",
    "pot_cols_share",
    "packing",
    "freq_mhz",
    "tm",
    "tn_folds",
    "tk_folds",
    "nonlinear_lanes",
)
PACKINGS = (1, 2, 4)


def lanes_param(kind: str) -> str:
    """The trial parameter of the lanes of op ``kind``'s unit (``hw.lanes.softmax``, ...)."""
    return f"hw.lanes.{kind}"


def kernel_param(kind: str) -> str:
    """The trial parameter of the kernel variant of op ``kind`` (``q.kernel.softmax``, ...)."""
    return f"q.kernel.{kind}"


class Suggester(Protocol):
    """The part of ``optuna.Trial`` a space needs (so the space is testable without a study)."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class QuantSpace:
    granularity: str
    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]
    pot_ratio: tuple[float, ...]
    fixed_layers: Mapping[str, LayerQuant] = field(default_factory=dict)
    #: ``float`` or ``int`` softmax / LayerNorm / GELU (:data:`codesign.quant.NONLINEAR_MODES`).
    nonlinear: NonlinearMode = "float"
    #: kind → the kernel variants a trial may choose (only the kinds the space names; one
    #: parameter :func:`kernel_param` each)
    kernels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def kernels_from_params(self, params: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
        """Every kind's kernel variant: the trial's choice for the kinds the space names (its
        first choice where ``params`` lacks one, as in a baseline's quantization), ``base`` else."""
        out = {kind: base.get(kind, DEFAULT_KERNEL) for kind in NONLINEAR_KINDS}
        for kind, values in self.kernels.items():
            out[kind] = str(params.get(kernel_param(kind), values[0]))
        return out


@dataclass(frozen=True)
class HardwareSpace:
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    pot_cols_share: tuple[float, ...]
    packing: tuple[int, ...]
    freq_mhz: tuple[float, ...]
    tm: tuple[int, ...]
    tn_folds: tuple[int, ...]
    tk_folds: tuple[int, ...]
    nonlinear_lanes: tuple[int, ...]
    #: op kind → its unit's lane counts a trial may choose (the kinds not named take
    #: ``nonlinear_lanes``; one parameter :func:`lanes_param` each)
    kind_lanes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """One design point: the quantized model and the accelerator that runs it."""

    quant: QuantConfig
    accel: AcceleratorConfig

    def key(self) -> str:
        """A stable identity: equal candidates (from different parameter sets) share results."""
        blob = json.dumps({"q": self.quant.to_dict(), "a": self.accel.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def group_of(layer: str, granularity: str) -> str:
    """The quantization group a GEMM layer belongs to."""
    if granularity == "model":
        return "all"
    if granularity == "layer":
        return layer
    parts = layer.split(".")
    return f"block{parts[1]}" if parts[0] == "blocks" else parts[0]


@dataclass(frozen=True)
class SearchSpace:
    """A typed search space; ``source`` is the file it came from (for messages)."""

    quant: QuantSpace
    hardware: HardwareSpace
    source: str = "<memory>"

    def fingerprint(self) -> str:
        """Changes whenever the choices change (a study refuses to resume in another space)."""
        q = self.quant
        blob = json.dumps(
            {
                "quant": [
                    q.granularity,
                    q.weight_bits,
                    q.act_bits,
                    q.pot_ratio,
                    {k: v.to_string() for k, v in sorted(q.fixed_layers.items())},
                    # only when set: the float default keeps the fingerprints of existing studies
                    *([q.nonlinear] if q.nonlinear != "float" else []),
                    *([{k: list(v) for k, v in sorted(q.kernels.items())}] if q.kernels else []),
                ],
                "hardware": [
                    *(list(getattr(self.hardware, k)) for k in HW_KEYS),
                    # only when set: spaces without it keep their fingerprints
                    *(
                        [{k: list(v) for k, v in self.hardware.kind_lanes.items()}]
                        if self.hardware.kind_lanes
                        else []
                    ),
                ],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def groups(self, layers: Sequence[str]) -> list[str]:
        seen: dict[str, None] = {}
        for name in layers:
            if name in self.quant.fixed_layers:
                continue
            if self.quant.granularity == "layer" and is_matmul_layer(name):
                seen[name] = None
            else:
                seen[group_of(name, self.quant.granularity)] = None
        return list(seen)

    def check_layers(self, layers: Sequence[str]) -> None:
        unknown = sorted(set(self.quant.fixed_layers) - set(layers))
        if unknown:
            raise UserError(
                f"{self.source}: quant.fixed_layers: unknown layer '{unknown[0]}' "
                f"(layers: {', '.join(layers[:4])}, ...)"
            )

    def suggest(self, trial: Suggester, layers: Sequence[str], quantize: bool = True) -> dict[str, Any]:
        """Draw the parameters of one trial (names are stable: they key Optuna's storage). The
        kernel variants are drawn with ``quantize`` off too (hardware-only searches)."""
        params: dict[str, Any] = {}
        hw = self.hardware
        for key in HW_KEYS:
            values = getattr(hw, key)
            params[f"hw.{key}"] = trial.suggest_categorical(f"hw.{key}", list(values))
        for kind, counts in hw.kind_lanes.items():
            params[lanes_param(kind)] = trial.suggest_categorical(lanes_param(kind), list(counts))
        for kind, variants in self.quant.kernels.items():
            params[kernel_param(kind)] = trial.suggest_categorical(kernel_param(kind), list(variants))
        if quantize:
            q = self.quant
            for group in self.groups(layers):
                matmul_only = is_matmul_layer(group)
                if not matmul_only:
                    params[f"q.{group}.w"] = trial.suggest_categorical(f"q.{group}.w", list(q.weight_bits))
                params[f"q.{group}.a"] = trial.suggest_categorical(f"q.{group}.a", list(q.act_bits))
                if not matmul_only and max(hw.pot_cols_share) > 0:
                    params[f"q.{group}.pot"] = trial.suggest_categorical(f"q.{group}.pot", list(q.pot_ratio))
        return params

    def decode(
        self, params: Mapping[str, Any], layers: Sequence[str], fixed_quant: QuantConfig | None = None
    ) -> Candidate:
        """Turn a trial's parameters into a candidate (``fixed_quant`` for hardware-only searches)."""
        rows, cols = int(params["hw.rows"]), int(params["hw.cols"])
        share = float(params["hw.pot_cols_share"])
        pot_cols = 0 if share == 0 or cols < 2 else min(max(round(share * cols), 1), cols - 1)
        if fixed_quant is None:
            quant = self.quant_from_params(params, layers, pot_cols > 0)
        else:
            kernels = self.quant.kernels_from_params(params, fixed_quant.kernels)
            quant = (
                fixed_quant if kernels == dict(fixed_quant.kernels) else replace(fixed_quant, kernels=kernels)
            )
        uses_pot = any(quant.for_layer(n).pot_ratio > 0 for n in layers)
        if fixed_quant is not None and pot_cols == 0 and uses_pot:
            pot_cols = max(1, cols // 2) if cols >= 2 else 0
        if not uses_pot:  # no design keeps columns its quantization cannot use
            pot_cols = 0
        packing = int(params["hw.packing"])
        channels = (cols - pot_cols) * (2 if packing == 4 else 1) + pot_cols
        tile = LayerHw(
            tm=int(params["hw.tm"]),
            tn=int(params["hw.tn_folds"]) * channels,
            tk=int(params["hw.tk_folds"]) * rows,
        )
        hw_layers = {}
        for name in layers:
            lq = quant.for_layer(name)
            hw_layers[name] = LayerHw(
                weight_bits=min(lq.weight_bits, 32),
                act_bits=min(lq.act_bits, 32),
                pot_ratio=lq.pot_ratio if pot_cols else 0.0,
                tm=tile.tm,
                tn=tile.tn,
                tk=tile.tk,
            )
        accel = AcceleratorConfig(
            freq_mhz=float(params["hw.freq_mhz"]),
            rows=rows,
            cols=cols,
            pot_cols=pot_cols,
            packing=packing,
            nonlinear_lanes=int(params["hw.nonlinear_lanes"]),
            default=tile,
            layers=hw_layers,
            nonlinear_kernels=quant.kernels,
            nonlinear_kind_lanes={
                kind: int(params.get(lanes_param(kind), counts[0]))
                for kind, counts in self.hardware.kind_lanes.items()
            },
        )
        return Candidate(quant=quant, accel=accel)

    def quant_from_params(
        self, params: Mapping[str, Any], layers: Sequence[str], has_pot: bool
    ) -> QuantConfig:
        """The quantization part of a trial (``has_pot``: the array has PoT columns)."""
        q = self.quant
        out: dict[str, LayerQuant] = {}
        for name in layers:
            if name in q.fixed_layers:
                out[name] = q.fixed_layers[name]
                continue
            group = (
                name
                if (q.granularity == "layer" and is_matmul_layer(name))
                else group_of(name, q.granularity)
            )
            a = int(params[f"q.{group}.a"])
            if is_matmul_layer(name):
                out[name] = LayerQuant(a, a, 0.0)
            else:
                ratio = float(params.get(f"q.{group}.pot", 0.0)) if has_pot else 0.0
                out[name] = LayerQuant(int(params[f"q.{group}.w"]), a, ratio)
        kernels = q.kernels_from_params(params, {})
        return QuantConfig(LayerQuant(32, 32, 0.0), out, nonlinear=q.nonlinear, kernels=kernels)

    def baseline_params(
        self,
        layers: Sequence[str],
        weight_bits: int,
        act_bits: int,
        pot_ratio: float,
        hardware: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Parameters of a uniform design (for ``enqueue_trial``); values snap to the space.
        ``hardware``: the hardware parameters by their names (``hw.*`` and the kernel choices
        ``q.kernel.*``)."""
        params: dict[str, Any] = dict(hardware)
        q = self.quant
        w = _nearest(q.weight_bits, weight_bits)
        a = _nearest(q.act_bits, act_bits)
        r = _nearest(q.pot_ratio, pot_ratio)
        for group in self.groups(layers):
            if not is_matmul_layer(group):
                params[f"q.{group}.w"] = w
                if max(self.hardware.pot_cols_share) > 0:
                    params[f"q.{group}.pot"] = r
            params[f"q.{group}.a"] = a
        return params


def _nearest(values: Sequence[Any], target: float) -> Any:
    return min(values, key=lambda v: (abs(v - target), v))


def _kernel_choices(raw: Any, where: str) -> dict[str, tuple[str, ...]]:
    """``quant.kernels``: op kind → a variant or a non-empty list of variants (in the given order,
    duplicates dropped); kinds in :data:`hwmodel.arch.config.NONLINEAR_KINDS` order."""
    raw = by_kind(raw, where, "kernel variants (e.g. softmax: [poly, shift])")
    out: dict[str, tuple[str, ...]] = {}
    for kind in NONLINEAR_KINDS:
        if kind not in raw:
            continue
        values = raw[kind] if isinstance(raw[kind], list) else [raw[kind]]
        if not values:
            raise UserError(f"{where}.{kind}: empty list (give at least one of {', '.join(VARIANTS)})")
        for v in values:
            if v not in VARIANTS:
                raise UserError(f"{where}.{kind}: {v!r} not allowed (allowed: {', '.join(VARIANTS)})")
        out[kind] = tuple(dict.fromkeys(str(v) for v in values))
    return out


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    p = Path(path)
    raw = read_yaml_mapping(p, "search space")
    top = check_keys(raw, ("quant", "hardware"), str(p), required=("quant", "hardware"))
    qw = f"{p}: quant"
    q = check_keys(top["quant"], QUANT_KEYS, qw, required=("weight_bits", "act_bits"))
    gran = q.get("granularity", "block")
    if gran not in GRANULARITIES:
        raise UserError(f"{qw}.granularity: {gran!r} not allowed (allowed: {', '.join(GRANULARITIES)})")
    fixed_raw = q.get("fixed_layers") or {}
    if not isinstance(fixed_raw, dict):
        raise UserError(f"{qw}.fixed_layers: expected a mapping of layer name to precision (e.g. W8A8)")
    fixed = {}
    for name, prec in fixed_raw.items():
        try:
            fixed[str(name)] = parse_precision(str(prec))
        except UserError as exc:
            raise UserError(f"{qw}.fixed_layers.{name}: {exc}") from exc
    nonlinear = q.get("nonlinear", "float")
    if nonlinear not in NONLINEAR_MODES:
        raise UserError(f"{qw}.nonlinear: {nonlinear!r} not allowed (allowed: {', '.join(NONLINEAR_MODES)})")
    kernels = _kernel_choices(q.get("kernels", {}), f"{qw}.kernels")
    quant = QuantSpace(
        granularity=gran,
        weight_bits=choices(q["weight_bits"], f"{qw}.weight_bits", int, 2, 16),
        act_bits=choices(q["act_bits"], f"{qw}.act_bits", int, 2, 16),
        pot_ratio=choices(q.get("pot_ratio", 0.0), f"{qw}.pot_ratio", float, 0.0, 1.0),
        fixed_layers=fixed,
        nonlinear=cast(NonlinearMode, nonlinear),
        kernels=kernels,
    )
    hw_where = f"{p}: hardware"
    h = check_keys(top["hardware"], (*HW_KEYS, "kind_lanes"), hw_where, required=("rows", "cols"))
    limits: dict[str, tuple[type, float, float, Any]] = {
        "rows": (int, 1, 1024, None),
        "cols": (int, 1, 1024, None),
        "pot_cols_share": (float, 0.0, 0.95, 0.0),
        "packing": (int, 1, 4, 2),
        "freq_mhz": (float, 1.0, 1000.0, 100.0),
        "tm": (int, 1, 65536, 65536),
        "tn_folds": (int, 1, 64, 1),
        "tk_folds": (int, 1, 4096, 4096),
        "nonlinear_lanes": (int, 1, 256, 4),
    }
    hw_values = {
        key: choices(h.get(key, default), f"{hw_where}.{key}", kind, lo, hi)
        for key, (kind, lo, hi, default) in limits.items()
    }
    bad = [p for p in hw_values["packing"] if p not in PACKINGS]
    if bad:
        raise UserError(f"{hw_where}.packing: {bad[0]} not allowed (allowed: 1, 2, 4 MACs per DSP slice)")
    kind_lanes = _kind_lanes(h.get("kind_lanes", {}), f"{hw_where}.kind_lanes")
    return SearchSpace(quant=quant, hardware=HardwareSpace(**hw_values, kind_lanes=kind_lanes), source=str(p))


def _kind_lanes(raw: Any, where: str) -> dict[str, tuple[int, ...]]:
    """``hardware.kind_lanes``: op kind → a lane count or a list of them (1 … 256), kinds in
    :data:`hwmodel.arch.config.NONLINEAR_KINDS` order."""
    raw = by_kind(raw, where, "lane counts (e.g. softmax: [64, 128])")
    return {
        kind: choices(raw[kind], f"{where}.{kind}", int, 1, 256) for kind in NONLINEAR_KINDS if kind in raw
    }
