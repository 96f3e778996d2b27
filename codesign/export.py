"""Per-design exports: accelerator.json (schema-versioned), quant.json, model_int.pt and rtl/
(engine, tile controller, non-linear units).

``accelerator.json`` follows ``hwmodel/schemas/accelerator.schema.json``; its ``config`` block is
an :class:`hwmodel.config.AcceleratorConfig` and ``model`` (with the architecture that rebuilds the
workload), ``device`` and ``caps`` are what it was priced on, so ``python -m hwmodel.report
--config`` reads the file as it is and reproduces ``predicted``, the model's numbers.
``quant.json`` is layered like an hls4ml config (Model default → LayerName overrides; the precision
strings are ours, not hls4ml types) and also holds the exact :class:`codesign.quant.QuantConfig`
under ``config``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from codesign.atomic import write_atomic, write_text_atomic
from codesign.quant import LayerQuant, QuantConfig, export_int_model
from codesign.space import Candidate
from hwmodel.controller import controller_resources
from hwmodel.cost import load_coefficients
from hwmodel.device import Device
from hwmodel.engine import EngineConfig
from hwmodel.model import DesignReport, UtilisationCaps, buffers, design_controller, design_engine
from hwmodel.workload import Workload

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


def controller_verilog_for(cand: Candidate, workload: Workload, device: Device) -> str:
    """Verilog of the tile controller of a design (module ``codesign_controller``)."""
    from hwmodel.rtl.controller import controller_verilog

    return controller_verilog(
        design_controller(workload, cand.accel, device), module_name="codesign_controller"
    )


def nonlinear_units_for(cand: Candidate, workload: Workload) -> list[tuple[str, int, int]]:
    """(kind, lanes, row-buffer address bits) of the non-linear units a design builds."""
    from hwmodel.model import nonlinear_row_bits

    lanes = cand.accel.nonlinear_lanes
    return [(kind, lanes, bits) for kind, bits in sorted(nonlinear_row_bits(workload).items())]


def nonlinear_verilog(kind: str, lanes: int, log2_rows: int) -> str:
    """Verilog of one non-linear unit (``lanes`` lanes; module ``codesign_<kind>``)."""
    from hwmodel.nonlinear import design_spec
    from hwmodel.rtl.nonlinear import unit_verilog

    return unit_verilog(kind, design_spec(kind), lanes, log2_rows, module_name=f"codesign_{kind}")
