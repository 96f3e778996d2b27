"""Per-design exports: accelerator.json (schema-versioned), quant.json, model_int.pt and rtl/
(engine, tile controller, non-linear units).

``accelerator.json`` follows ``hwmodel/model/schemas/accelerator.schema.json``; its ``config`` block is
an :class:`hwmodel.arch.config.AcceleratorConfig` and ``model`` (with the architecture that rebuilds the
workload), ``device`` and ``caps`` are what it was priced on, so ``python -m hwmodel.report
--config`` reads the file as it is and reproduces ``predicted``, the model's numbers.
``quant.json`` is layered like an hls4ml config (Model default → LayerName overrides; the precision
strings are ours, not hls4ml types) and also holds the exact :class:`codesign.quant.QuantConfig`
under ``config``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from codesign.atomic import write_atomic, write_text_atomic
from codesign.quant import LayerQuant, QuantConfig, export_int_model
from codesign.space import Candidate
from hwmodel.arch.config import AcceleratorConfig
from hwmodel.arch.engine import EngineConfig
from hwmodel.arch.program import Descriptor, decode_program
from hwmodel.cost.coefficients import load_coefficients
from hwmodel.cost.controller import controller_resources
from hwmodel.model.evaluation import DesignReport, UtilisationCaps, buffers, design_controller, design_engine
from hwmodel.target.device import Device
from hwmodel.target.workload import Workload

if TYPE_CHECKING:  # the RTL package (PyRTL) loads only when Verilog is written
    from hwmodel.rtl.accelerator import AcceleratorSpec
    from hwmodel.rtl.testbench import TileOperands

#: accelerator.json version 2: the weight-stationary engine v2 (config schema 2, ``engines`` block)
ACCELERATOR_SCHEMA_VERSION = 2
QUANT_SCHEMA_VERSION = 1


def _fixed(bits: int) -> str:
    return "float32" if bits >= 32 else f"fixed<{bits}>"


def layer_precision(lq: LayerQuant) -> dict[str, Any]:
    """Precision block of one layer (our strings: ``fixed<b>``, ``pot<b>``, ``mixed<...>``)."""
    if lq.weight_bits >= 32:
        weight = "float32"
    elif lq.pot_ratio >= 1:
        weight = f"pot<{lq.weight_bits}>"
    elif lq.pot_ratio > 0:
        weight = f"mixed<fixed<{lq.weight_bits}>,pot<{lq.weight_bits}>>"
    else:
        weight = _fixed(lq.weight_bits)
    return {
        "Precision": {"weight": weight, "act": _fixed(lq.act_bits)},
        "weight_bits": lq.weight_bits,
        "act_bits": lq.act_bits,
        "pot_ratio": lq.pot_ratio,
    }


def quant_document(
    quant: QuantConfig,
    layers: tuple[str, ...],
    model_name: str,
    accuracy: dict[str, Any],
    act_scales: dict[str, float] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": QUANT_SCHEMA_VERSION,
        "model": model_name,
        "Model": layer_precision(quant.default),
        "LayerName": {name: layer_precision(quant.for_layer(name)) for name in layers},
        "methods": {
            "act_calibration": quant.act_calibration,
            "weight_calibration": quant.weight_calibration,
            "softmax": quant.softmax,
            "nonlinear": quant.nonlinear,
            **({"kernels": dict(quant.kernels)} if not quant.all_poly else {}),
        },
        "accuracy": accuracy,
        "config": quant.to_dict(),
    }
    if act_scales:
        doc["act_scales"] = act_scales
    return doc


def accelerator_document(
    cand: Candidate,
    workload: Workload,
    device: Device,
    caps: UtilisationCaps,
    report: DesignReport,
    trial: int | None,
) -> dict[str, Any]:
    accel = cand.accel
    engine = design_engine(workload, accel, device)
    coef = load_coefficients()
    ctrl = design_controller(workload, accel, device)
    ctrl_res = controller_resources(ctrl, coef.controller_for(device.synth_family))
    model: dict[str, Any] = {"name": workload.model_name, "tokens": workload.tokens, "macs": workload.macs}
    if workload.architecture is not None:
        model["architecture"] = workload.architecture.to_dict()
    return {
        "schema_version": ACCELERATOR_SCHEMA_VERSION,
        "generator": "codesign",
        "trial": trial,
        "model": model,
        "device": asdict(device),
        "caps": asdict(caps),
        "coefficients_version": coef.version,
        "config": accel.to_dict(),
        "engines": engine_document(engine, accel.nonlinear_lanes),
        "buffers": [
            {
                "name": b.name,
                "banks": b.banks,
                "depth_words": b.depth_words,
                "width_bits": b.width_bits,
                "double_buffered": b.double_buffered,
                "bram36": mem.bram36,
                "lutram_primitives": mem.lutram_primitives,
            }
            for b in buffers(workload, accel, device)
            for mem in (b.memory(device.synth_family),)
        ],
        "controller": {
            "tile_bits": ctrl.tile_bits,
            "buffers": [asdict(b) for b in ctrl.buffers],
            "lut": round(ctrl_res.lut),
            "ff": ctrl_res.ff,
        },
        "predicted": report.to_dict(),
    }


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")


def write_int_model(path: Path, qmodel: torch.nn.Module) -> Path:
    return write_atomic(path, lambda tmp: export_int_model(qmodel, tmp))


def engine_document(engine: EngineConfig, nonlinear_lanes: int) -> dict[str, Any]:
    """The ``engines`` block of accelerator.json: exactly the engine the exported Verilog builds."""
    return {
        "name": engine.name,
        "dsp": engine.dsp,
        "rows": engine.rows,
        "cols_fixed": engine.cols_fixed,
        "cols_pot": engine.cols_pot,
        "weight_bits": engine.weight_bits,
        "pot_weight_bits": engine.pot_weight_bits,
        "act_bits": engine.act_bits,
        "acc_bits": engine.acc_bits,
        "packing": engine.packing,
        "modes": [
            {
                "lanes": m.lanes,
                "tokens": m.tokens,
                "channels": m.channels,
                "max_weight_bits": m.weight_bits,
                "max_act_bits": m.act_bits,
                "lane_offsets": list(m.offsets),
            }
            for m in engine.modes
        ],
        "chain_rows": engine.chain_rows,
        "dsp_slices": engine.dsp_slices,
        "macs_per_cycle": engine.macs_per_cycle,
        "nonlinear_lanes": nonlinear_lanes,
    }


def engine_verilog_for(cand: Candidate, workload: Workload, device: Device) -> str:
    """Verilog of the compute engine of a design (fabric + DSP primitives, PoT sub-array)."""
    from hwmodel.rtl.verilog import engine_verilog

    return str(engine_verilog(design_engine(workload, cand.accel, device), module_name="codesign_engine"))


#: The whole top-level's Verilog in a design's ``rtl/`` (designs with a program).
ACCELERATOR_FILE = "accelerator.v"


def design_accelerator_spec(
    descriptors: Sequence[Descriptor], workload: Workload, accel: AcceleratorConfig, device: Device
) -> AcceleratorSpec:
    """The top-level build of a design (its engine, its non-linear units' lanes) that runs
    ``descriptors`` (its program's, or some of them)."""
    from hwmodel.rtl.accelerator import AcceleratorSpec

    engine = design_engine(workload, accel, device)
    return AcceleratorSpec.for_program(engine, descriptors, nl_lanes=dict(accel.lanes_key))


def accelerator_spec_for(
    program: bytes, workload: Workload, accel: AcceleratorConfig, device: Device
) -> AcceleratorSpec:
    """:func:`design_accelerator_spec` of a design's encoded program (``program.bin``)."""
    return design_accelerator_spec(decode_program(program), workload, accel, device)


def accelerator_verilog_for(
    program_file: Path, workload: Workload, accel: AcceleratorConfig, device: Device
) -> str:
    """Verilog of a design's whole top-level (module ``codesign_accelerator``, the engine's DSP
    slices as primitives, as ``engine.v``) for its exported ``program.bin``."""
    from hwmodel.rtl.accelerator import accelerator_verilog

    spec = accelerator_spec_for(program_file.read_bytes(), workload, accel, device)
    return accelerator_verilog(spec, primitives=True)


def controller_verilog_for(cand: Candidate, workload: Workload, device: Device) -> str:
    """Verilog of the tile controller of a design (module ``codesign_controller``)."""
    from hwmodel.rtl.controller import controller_verilog

    return controller_verilog(
        design_controller(workload, cand.accel, device), module_name="codesign_controller"
    )


def nonlinear_units_for(cand: Candidate, workload: Workload) -> list[tuple[str, int, int, str]]:
    """(kind, lanes, row-buffer address bits, kernel variant) of the non-linear units a design
    builds (the variant its accelerator config chooses for the kind)."""
    from hwmodel.model.evaluation import nonlinear_row_bits

    accel = cand.accel
    kernels = accel.nonlinear_kernels
    return [
        (kind, accel.lanes_for(kind), bits, kernels[kind])
        for kind, bits in sorted(nonlinear_row_bits(workload).items())
    ]


def nonlinear_verilog(kind: str, lanes: int, log2_rows: int, variant: str = "poly") -> str:
    """Verilog of one non-linear unit (``lanes`` lanes computing the ``variant`` kernel; module
    ``codesign_<kind>``)."""
    from hwmodel.arch.nonlinear import design_spec
    from hwmodel.rtl.nonlinear import unit_verilog

    return unit_verilog(
        kind, design_spec(kind), lanes, log2_rows, module_name=f"codesign_{kind}", variant=variant
    )


#: beside ``rtl/engine.v``: its self-checking testbench and the DSP primitives' simulation models
TESTBENCH_FILE = "tb_engine.v"
DSP_MODELS_FILE = "dsp_models.v"
#: the testbench's tile: at most this many tokens, and two k-folds of the array's rows
TESTBENCH_TOKENS = 8
TESTBENCH_K_FOLDS = 2


def _compact(channels: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``0–2, 5``."""
    runs: list[list[int]] = []
    for c in channels:
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs) or "none"


def tb_operands_for(
    cand: Candidate,
    workload: Workload,
    engine: EngineConfig,
    qmodel: torch.nn.Module | None,
    image: torch.Tensor | None,
    seed: int,
) -> TileOperands:
    """The tile an exported design's testbench runs: the corner of the first tile of its most
    PoT-heavy linear layer (the first such layer on a tie) — up to :data:`TESTBENCH_TOKENS`
    tokens, two k-folds of the array's rows and the channels of one fold of each sub-array.

    With the design's quantized model (``qmodel``) and one test ``image``, the operands are the
    layer's integer weight codes (its fixed-point and PoT channels laid out as the engine takes
    them: fixed columns first in each tile) and the integer codes of the layer's input
    activations on that image. Without a model (hardware-only runs), seeded random codes of the
    layer's widths. ``engine``: the design's (:func:`hwmodel.model.evaluation.design_engine`).
    """
    from codesign.quant import QuantConv2d, QuantLinear
    from codesign.quant._quantizers import fixed_codes, qmax_signed
    from hwmodel.rtl.harness import pot_columns
    from hwmodel.rtl.testbench import TileOperands

    ops = [op for op in workload.gemms if op.weight_operand and op.kind != "patch_embed"]
    hws = {op.name: cand.accel.for_layer(op.name) for op in ops}
    if engine.cols_pot == 0:
        ops = [op for op in ops if hws[op.name].pot_ratio == 0] or ops
    op = max(ops, key=lambda o: (hws[o.name].pot_ratio, -ops.index(o)))
    hw = hws[op.name]
    tokens = min(TESTBENCH_TOKENS, hw.tm, op.m)
    depth = min(TESTBENCH_K_FOLDS * engine.rows, hw.tk, op.k)
    mode = engine.mode_for(hw.weight_bits, hw.act_bits) if engine.cols_fixed else None
    width = min(hw.tn, op.n, engine.cols_fixed * (mode.channels if mode else 0) + engine.cols_pot)
    bits = (hw.weight_bits, hw.act_bits)
    rng = np.random.default_rng(seed)
    module = qmodel.get_submodule(op.name) if qmodel is not None else None
    qweight = getattr(module, "qweight", None)
    if not isinstance(module, QuantLinear | QuantConv2d) or qweight is None or module.act_scale is None:
        codes = rng.integers(-(1 << (hw.weight_bits - 1)), 1 << (hw.weight_bits - 1), (op.n, op.k))
        pot = np.zeros(op.n, dtype=bool)
        pot[: round(hw.pot_ratio * op.n)] = True
        top = qmax_signed(hw.weight_bits)  # PoT codes: 0 or ±(1 … 2^(b−1) − 1)
        codes[pot] = np.clip(codes[pot], -top, top)
        a = rng.integers(-(1 << (hw.act_bits - 1)), 1 << (hw.act_bits - 1), (tokens, depth))
        what = f"seeded random codes of {op.name}'s widths (no quantized model in this run)"
    else:
        codes = qweight.codes.reshape(op.n, -1).numpy().astype(np.int64)
        pot = qweight.pot_mask.numpy().astype(bool)
        seen: list[torch.Tensor] = []
        hook = module.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
        try:
            with torch.no_grad():
                qmodel(image)  # type: ignore[misc]
        finally:
            hook.remove()
        x = fixed_codes(seen[0][:1].reshape(-1, op.k), torch.tensor(module.act_scale), module.act_bits)
        a = x.numpy().astype(np.int64)[:tokens, :depth]
        what = f"{op.name} of the design's integer model, input tokens 0–{tokens - 1} of test image 0"
    fixed_ch = [int(c) for c in np.nonzero(~pot)[0]]
    pot_ch = [int(c) for c in np.nonzero(pot)[0]]
    while True:  # the widest tile whose PoT/fixed split the layer's channels can fill
        mask = pot_columns(width, width, hw.pot_ratio)
        if int(mask.sum()) <= len(pot_ch) and int((~mask).sum()) <= len(fixed_ch):
            break
        width -= 1
    take_fix, take_pot = fixed_ch[: int((~mask).sum())], pot_ch[: int(mask.sum())]
    order = np.empty(width, dtype=np.int64)
    order[~mask] = take_fix
    order[mask] = take_pot
    w = codes[order, :depth].T.copy()
    if take_pot:  # the engine's PoT code: sign << (b−1) | magnitude code
        pb = engine.pot_weight_bits
        mags = np.abs(w[:, mask])
        if int(mags.max(initial=0)) >= 1 << (pb - 1):
            raise ValueError(f"{op.name}: PoT code wider than the engine's {pb} bits")
        w[:, mask] = np.where(w[:, mask] < 0, 1 << (pb - 1), 0) | mags
    source = (
        f"{what}, input features 0–{depth - 1}; output channels {_compact(take_fix)} (fixed) "
        f"and {_compact(take_pot)} (PoT)"
    )
    return TileOperands(a=a, w=w, pot_ratio=hw.pot_ratio, layer_bits=bits, source=source)
