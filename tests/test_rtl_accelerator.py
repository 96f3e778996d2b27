"""The whole accelerator (``codesign_accelerator``): a compiled program of the tiny ViT runs on the
top-level under Verilator, driven by the host driver through the AXI4-Lite registers, and its
logits are bit-exact against the integer model (and so against the program's reference
semantics); an op the build cannot run ends the run with ``STATUS`` error instead of hanging."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from test_integer import config
from test_integer_exports import exported_run
from test_quant_model import tiny_vit

from codesign.cli.rtlsim import SYNTH_KEYS, entry, rtlsim, rtlsynth
from codesign.errors import UserError
from codesign.program import Program, compile_program, execute, write_program
from codesign.program.driver import Accelerator, ProgramFiles
from codesign.quant import Calibration, quantize_integer_model
from codesign.quant._integer import IntegerViT
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.arch.program import (
    OPCODES,
    STATUS_DONE,
    STATUS_ERROR,
    encode_program,
    write_operand,
)
from hwmodel.model.evaluation import design_engine, evaluate
from hwmodel.rtl.accelerator import AcceleratorSpec, accelerator_verilog, unit_verilogs
from hwmodel.rtl.verilator import VerilatorDevice, VerilatorSim, check_top, verilator_available
from hwmodel.rtl.verilog import iverilog_available
from hwmodel.target.device import load_device
from hwmodel.target.workload import workload_from_model

pytestmark = pytest.mark.skipif(not verilator_available(), reason="verilator not installed")

DESIGNS = {
    "W8A8 poly": config("W8A8"),
    "W4A8P0.5 shift log2": config("W4A8P0.5", "shift", "log2"),
}


@cache
def _images() -> torch.Tensor:
    return torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))


@cache
def _design(name: str) -> tuple[IntegerViT, Program, AcceleratorSpec]:
    model = tiny_vit()
    im = quantize_integer_model(model, DESIGNS[name], Calibration(model, _images()))
    workload, device = workload_from_model(model), load_device("zcu102")
    accel = AcceleratorConfig(freq_mhz=200, rows=8, cols=16, default=LayerHw(tm=8, tn=16, tk=16))
    if "P" in name:  # PoT columns beside the fixed-point ones
        accel = AcceleratorConfig(
            freq_mhz=200, rows=8, cols=16, pot_cols=4, default=LayerHw(tm=8, tn=16, tk=16)
        )
    program = compile_program(im, evaluate(workload, accel, device, detail=True))
    return (
        im,
        program,
        AcceleratorSpec.for_program(design_engine(workload, accel, device), program.descriptors),
    )


@cache
def _sim(name: str) -> VerilatorSim:
    _, _, spec = _design(name)
    return VerilatorSim(accelerator_verilog(spec), spec.data_bits, latency_cycles=16)


def test_the_top_level_has_the_harness_ports_and_its_module_name() -> None:
    _, _, spec = _design("W8A8 poly")
    assert check_top(accelerator_verilog(spec), spec.data_bits) == "codesign_accelerator"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DESIGNS))
def test_the_accelerator_runs_the_program_bit_exact(name: str, tmp_path: Path) -> None:
    """Two images through the host driver on the Verilator top: the head's accumulators equal
    the integer model's; every op done; the whole DRAM image equal to the reference run's."""
    im, program, _ = _design(name)
    write_program(tmp_path, program)
    files = ProgramFiles.read(tmp_path)
    device = VerilatorDevice(_sim(name), int(files.doc["dram_bytes"]))
    acc = Accelerator(files, device)
    images = _images()[:2]
    got = acc.accumulators(images)
    np.testing.assert_array_equal(got, im.accumulators(images).numpy())
    assert device.last is not None
    assert device.last.status & STATUS_DONE and not device.last.status & STATUS_ERROR
    assert device.last.ops_done == len(program.descriptors)
    # every byte as the reference semantics leave it (scratch included), for the last image
    ref = program.image()
    rows = acc.rows(images[-1:])[0]
    write_operand(ref, program.region("input").operand(), rows.numpy()[None])
    execute(ref)
    np.testing.assert_array_equal(device.mem, ref)


@pytest.mark.slow
def test_an_op_the_build_lacks_ends_the_run_with_an_error() -> None:
    """A softmax whose formats the build's units do not have: STATUS error, no hang."""
    _, program, _ = _design("W8A8 poly")
    soft = next(i for i, d in enumerate(program.descriptors) if d.kind == "softmax")
    odd = program.descriptors[soft]
    ops = [*program.descriptors[:soft], replace(odd, in_frac=odd.in_frac - 1)]
    mem = program.image()
    enc = np.frombuffer(encode_program(ops), dtype=np.uint8)
    mem[: enc.size] = enc
    _, res = _sim("W8A8 poly").run(mem, 0, max_cycles=2_000_000)
    assert not res.timed_out
    assert res.status & STATUS_ERROR
    assert res.ops_done == soft
    assert ops[-1].opcode == OPCODES["softmax"]


@pytest.mark.slow
def test_rtlsim_runs_an_exported_design_bit_exact(tmp_path: Path) -> None:
    """``codesign.rtlsim`` on an exported design (W4A8, half the columns PoT, pynq_z2): the test
    images bit-exact, the cycles of each run counted, the model's latency beside them; a design
    without a program is its one line."""
    _, _, run = exported_run(tmp_path, with_rtl=True)
    result = rtlsim(run, 0, 2)
    assert result.images == 2 and result.bit_exact_images == 2
    assert result.sim_cycles_per_image > result.model_cycles_per_image > 0
    assert 0.0 <= result.top1 <= 100.0
    with pytest.raises(UserError, match=r"no program\.json"):
        rtlsim(run, 1, 1)
    # the export's top-level (DSP primitives, for synthesis) compiles with the primitives' models
    rtl = run / "designs" / "0" / "rtl"
    text = (rtl / "accelerator.v").read_text()
    assert "module codesign_accelerator" in text and ("DSP48E1" in text or "DSP48E2" in text)
    assert not (run / "designs" / "1" / "rtl" / "accelerator.v").exists()
    if iverilog_available():
        sources = [str(rtl / "accelerator.v"), *(str(p) for p in rtl.glob("dsp_models.v"))]
        subprocess.run(["iverilog", "-o", str(tmp_path / "top"), *sources], check=True)


@pytest.mark.slow
def test_rtlsim_synth_puts_yosys_beside_the_model(tmp_path: Path) -> None:
    """``codesign.rtlsim --synth``: Yosys on the exported design's whole top-level (its family's
    DSP primitives: at least the engine's slices) beside the model's totals from
    ``accelerator.json``; a design without a program is its one line."""
    _, _, run = exported_run(tmp_path, with_rtl=True)
    got = rtlsynth(run, 0)
    doc = json.loads((run / "designs" / "0" / "accelerator.json").read_text())
    assert got.model == {k: float(doc["predicted"]["resources"][k]) for k in SYNTH_KEYS}
    assert got.family == "xc7" and got.synth_s > 0
    assert got.yosys["dsp"] >= doc["engines"]["dsp_slices"] > 0
    assert got.yosys["lut"] > 0 and got.yosys["ff"] > 0
    with pytest.raises(UserError, match=r"no program\.json"):
        rtlsynth(run, 1)


def test_each_unit_of_the_top_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """``--synth --units`` synthesises these: each unit as the top builds it, one module each (the
    engine with its DSP primitives; the interconnect with a port per master the top has)."""
    _, _, spec = _design("W4A8P0.5 shift log2")
    texts = unit_verilogs(spec)
    assert list(texts) == ["engine", "gemm_core", "epilogue", "nl_op", "sequencer", "interconnect"]
    for name, text in texts.items():
        assert text.count("\nmodule ") + text.startswith("module ") >= 1, name
    assert "DSP48E2" in texts["engine"] and "DSP48E2" in texts["gemm_core"]
    reads = spec.read_masters
    assert reads == 2 + spec.gemm.readers + 1  # the fetch, the core's, the epilogue's, the unit's
    assert (
        f"r{reads - 1}_arvalid" in texts["interconnect"] and f"r{reads}_arvalid" not in texts["interconnect"]
    )
    assert "w1_awvalid" in texts["interconnect"]
    assert entry(["/nonexistent", "--trial", "0", "--units"]) == 2
    assert capsys.readouterr().err.strip().endswith("--units goes with --synth")
