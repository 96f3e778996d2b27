"""One home for the engine: accelerator.json's ``engines`` block, the exported Verilog and the
model all describe the engine :func:`hwmodel.model.evaluation.design_engine` returns (equal to the
per-layer reference :func:`hwmodel.arch.engine.engine_for_design`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from design_params import SPACE, design_params

from codesign.export import (
    accelerator_document,
    controller_verilog_for,
    engine_document,
    engine_verilog_for,
    nonlinear_units_for,
    nonlinear_verilog,
)
from codesign.quant import QuantConfig
from hwmodel.arch.engine import engine_for_design
from hwmodel.cost.controller import controller_register_bits
from hwmodel.cost.engine import register_bits
from hwmodel.model.evaluation import UtilisationCaps, buffers, design_controller, design_engine, evaluate
from hwmodel.rtl.verilog import synthesize_verilog
from hwmodel.target.device import load_device
from hwmodel.target.workload import Workload

CASES = [
    ("pynq_z2", design_params(2, 4, 0.5, 2), "W8A8P0.5"),
    ("zcu104", design_params(3, 2, 0.0, 4), "W4A4"),
    ("ultra96v2", design_params(4, 2, 0.0, 1), "W6A8"),
]


def _design(workload: Workload, device: str, params: dict[str, Any], precision: str) -> tuple[Any, ...]:
    dev = load_device(device)
    cand = SPACE.decode(params, workload.layer_names(), QuantConfig.uniform(precision))
    report = evaluate(workload, cand.accel, dev, detail=True)
    doc = accelerator_document(cand, workload, dev, UtilisationCaps(), report, 0)
    return dev, cand, doc, engine_verilog_for(cand, workload, dev)


@pytest.mark.parametrize(("device", "params", "precision"), CASES)
def test_engines_block_and_verilog_state_the_same_engine(
    mnist_workload: Workload, device: str, params: dict[str, Any], precision: str
) -> None:
    dev, cand, doc, verilog = _design(mnist_workload, device, params, precision)
    engine = engine_for_design(mnist_workload, cand.accel, dev.dsp_type)
    assert engine == design_engine(mnist_workload, cand.accel, dev)
    assert doc["engines"] == engine_document(engine, cand.accel.nonlinear_lanes)
    assert verilog.startswith(f"// codesign engine {doc['engines']['name']}:")
    top = verilog.split("endmodule", 1)[0]
    slices = re.findall(rf"^\s*{dev.dsp_type} #", top, flags=re.MULTILINE)
    assert len(slices) == doc["engines"]["dsp_slices"] == engine.rows * engine.cols_fixed
    for c in range(engine.cols_pot):
        assert re.search(rf"\bp_out{c}\b", top)


@pytest.mark.slow
@pytest.mark.parametrize(("device", "params", "precision"), CASES[:2])
def test_exported_verilog_synthesises_to_the_stated_engine(
    mnist_workload: Workload, device: str, params: dict[str, Any], precision: str
) -> None:
    dev, cand, doc, verilog = _design(mnist_workload, device, params, precision)
    res = synthesize_verilog(verilog, family=dev.synth_family)
    engine = design_engine(mnist_workload, cand.accel, dev)
    assert res.dsp == doc["engines"]["dsp_slices"]
    assert res.ff == register_bits(engine)
    assert res.cells.get(dev.dsp_type, 0) == res.dsp  # the slice the device has, nothing else


def test_nonlinear_units_of_a_design(mnist_workload: Workload) -> None:
    """The units a design exports: its lanes, row buffers for the longest row of each kind."""
    _, cand, _, _ = _design(mnist_workload, *CASES[0])
    units = nonlinear_units_for(cand, mnist_workload)
    assert units == [("gelu", 2, 0, "poly"), ("layernorm", 2, 7, "poly"), ("softmax", 2, 5, "poly")]
    text = nonlinear_verilog("softmax", 2, 5)
    assert "module codesign_softmax" in text and "ready_1" in text and "ready_2" not in text


def test_controller_block_and_verilog_state_the_same_controller(mnist_workload: Workload) -> None:
    """accelerator.json's ``controller`` block is the controller rtl/controller.v builds, and
    the model's system part prices exactly it."""
    dev, cand, doc, _ = _design(mnist_workload, *CASES[0])
    spec = design_controller(mnist_workload, cand.accel, dev)
    block = doc["controller"]
    assert block["tile_bits"] == spec.tile_bits and block["ff"] == controller_register_bits(spec)
    assert [b["name"] for b in block["buffers"]] == [
        b.name for b in buffers(mnist_workload, cand.accel, dev)
    ][: len(spec.buffers)]
    text = controller_verilog_for(cand, mnist_workload, dev)
    assert "module codesign_controller" in text
    for b in spec.buffers:
        assert f"{b.name}_eng_addr" in text and f"{b.name}_dma_addr" in text
    res = synthesize_verilog(text, family=dev.synth_family)
    assert res.ff == block["ff"] and res.dsp == 0 and res.bram36 == 0
