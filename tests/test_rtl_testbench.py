"""The exported self-checking testbench (rtl/tb_engine.v): it passes under Icarus on the engines of
real designs, with operands from the design's own integer model; it expects exactly what the PyRTL
simulation of the engine produces; and it fails when the engine's answer or schedule is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from design_params import SPACE, design_params

from codesign.export import TESTBENCH_FILE, engine_verilog_for, tb_operands_for
from codesign.quant import QUANTIZERS, QuantConfig
from codesign.quant._quantizers import pot_min_exponent
from hwmodel.arch.cycles import mixed_tile_cycles
from hwmodel.arch.engine import decode_pot
from hwmodel.model.evaluation import design_engine
from hwmodel.rtl.harness import GemmTiling, reference_gemm, simulate_gemm
from hwmodel.rtl.testbench import TileOperands, engine_testbench
from hwmodel.rtl.verilog import dsp_sim_sources, iverilog_available, run_icarus
from hwmodel.target.device import load_device
from hwmodel.target.workload import Workload

pytestmark = pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed")

#: DSP48E1 with a PoT sub-array and mixed layers; DSP48E2 packing 4 at W4A4; W6A8 unpacked
CASES = [
    ("pynq_z2", design_params(2, 4, 0.5, 2), "W4A8P0.5"),
    ("zcu104", design_params(3, 2, 0.0, 4), "W4A4"),
    ("ultra96v2", design_params(4, 2, 0.0, 1), "W6A8"),
]


def _write(tmp: Path, engine_v: str, tb: str) -> list[Path]:
    files = [tmp / "engine.v", tmp / TESTBENCH_FILE]
    files[0].write_text(engine_v)
    files[1].write_text(tb)
    models = dsp_sim_sources(engine_v)
    if models:
        files.append(tmp / "dsp_models.v")
        files[-1].write_text("\n".join(models))
    return files


@pytest.fixture(scope="module")
def default_model() -> tuple[Any, Any]:
    from codesign.models import load_default
    from codesign.proxy import Evaluator

    model, splits = load_default()
    return Evaluator(model, splits), splits.test.x[:1]


def test_testbench_of_a_design_passes_on_its_integer_model(
    mnist_workload: Workload, default_model: tuple[Any, Any], tmp_path: Path
) -> None:
    """A mixed design (fixed and PoT channels in one tile) with its own model's operands; the
    exported run folders check every design the same way (tests/test_search.py)."""
    evaluator, image = default_model
    device, params, precision = CASES[0]
    dev = load_device(device)
    cand = SPACE.decode(params, mnist_workload.layer_names(), QuantConfig.uniform(precision))
    qmodel = evaluator.quantized(cand.quant)
    engine = design_engine(mnist_workload, cand.accel, dev)
    tile = tb_operands_for(cand, mnist_workload, engine, qmodel, image, seed=0)
    assert "of the design's integer model" in tile.source
    assert tile.a.shape[0] == min(8, cand.accel.default.tm) and tile.a.shape[1] == min(2 * engine.rows, 96)
    if cand.accel.default.pot_ratio:  # both sub-arrays get channels
        assert 0 < int(tile.pot_mask.sum()) < tile.w.shape[1]

    # the tile is the layer's: its integer product, scaled back, is what the fake-quantized layer
    # computes on the same inputs (bias aside)
    name = re.search(r"^(\S+) of the design", tile.source).group(1)  # type: ignore[union-attr]
    layer = qmodel.get_submodule(name)
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    with torch.no_grad():
        qmodel(image)
    hook.remove()
    acc = reference_gemm(tile.a, tile.w, tile.pot_mask, engine)
    qw = layer.qweight
    t, k = tile.a.shape
    x = QUANTIZERS["fixed"](seen[0], torch.tensor(layer.act_scale), layer.act_bits)[0, :t, :k]
    fixed_col = int(np.nonzero(~tile.pot_mask)[0][0])
    ch = int(np.nonzero(~qw.pot_mask.numpy())[0][0])
    want = x @ layer.weight[ch, :k]
    got = acc[:, fixed_col] * layer.act_scale * float(qw.scale[ch])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
    if tile.pot_mask.any():
        pot_col = int(np.nonzero(tile.pot_mask)[0][0])
        ch = int(np.nonzero(qw.pot_mask.numpy())[0][0])
        want = x @ layer.weight[ch, :k]
        e_min = pot_min_exponent(qw.bits)
        got = acc[:, pot_col] * layer.act_scale * float(qw.scale[ch]) * 2.0**e_min
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)

    verilog = engine_verilog_for(cand, mnist_workload, dev)
    out = run_icarus(_write(tmp_path, verilog, engine_testbench(engine, verilog, tile)))
    assert re.search(r"^PASS: tb_engine .* exact, (\d+) cycles \(model \1\)", out, flags=re.MULTILINE), out


@pytest.mark.parametrize(("device", "params", "precision"), CASES)
def test_testbench_expects_what_the_pyrtl_engine_computes(
    mnist_workload: Workload, tmp_path: Path, device: str, params: dict[str, Any], precision: str
) -> None:
    """The testbench's expected C and cycles are the simulated engine's, and the exported engine
    meets them under Icarus (random operands: the hardware-only export)."""
    dev = load_device(device)
    cand = SPACE.decode(params, mnist_workload.layer_names(), QuantConfig.uniform(precision))
    engine = design_engine(mnist_workload, cand.accel, dev)
    tile = tb_operands_for(cand, mnist_workload, engine, None, None, seed=3)
    assert "seeded random codes" in tile.source
    m, k = tile.a.shape
    n = tile.w.shape[1]
    run = simulate_gemm(tile.a, tile.w, engine, GemmTiling(m, n, k), tile.pot_ratio, tile.layer_bits)
    assert np.array_equal(run.outputs, reference_gemm(tile.a, tile.w, tile.pot_mask, engine))
    assert run.cycles == mixed_tile_cycles(m, n, k, engine, tile.pot_ratio, tile.layer_bits)
    if tile.pot_mask.any():  # PoT codes decode to powers of two within the layer's range
        vals = np.abs(decode_pot(tile.w[:, tile.pot_mask], engine.pot_weight_bits))
        assert vals.max() <= 2 ** (2 ** (tile.layer_bits[0] - 1) - 2)
    verilog = engine_verilog_for(cand, mnist_workload, dev)
    out = run_icarus(_write(tmp_path, verilog, engine_testbench(engine, verilog, tile)))
    assert f"exact, {run.cycles} cycles (model {run.cycles})" in out


def test_testbench_fails_on_a_wrong_answer_or_schedule(mnist_workload: Workload, tmp_path: Path) -> None:
    dev = load_device("pynq_z2")
    cand = SPACE.decode(CASES[0][1], mnist_workload.layer_names(), QuantConfig.uniform("W4A8P0.5"))
    engine = design_engine(mnist_workload, cand.accel, dev)
    verilog = engine_verilog_for(cand, mnist_workload, dev)
    rng = np.random.default_rng(1)
    n = 2 * engine.cols_fixed + engine.cols_pot
    a = rng.integers(-128, 128, (5, 7))
    w = rng.integers(-8, 8, (7, n))
    w[:, -engine.cols_pot :] = rng.integers(0, 1 << engine.pot_weight_bits, (7, engine.cols_pot))
    tile = TileOperands(a, w, engine.cols_pot / n, (4, 8), "random")
    tb = engine_testbench(engine, verilog, tile)
    assert "PASS" in run_icarus(_write(tmp_path, verilog, tb))

    # one expected value off by one
    wrong = re.sub(
        r"want\[0\] = (\d+)'d(\d+);",
        lambda mt: f"want[0] = {mt.group(1)}'d{int(mt.group(2)) ^ 1};",
        tb,
        count=1,
    )
    assert wrong != tb
    with pytest.raises(RuntimeError, match=r"FAIL: C\[0\]\[0\]"):
        run_icarus(_write(tmp_path, verilog, wrong))
    # the fixed sub-array's first swap one cycle late: the schedule no longer fits the engine
    first_swap = re.search(r"^        (\d+): begin ([^\n]*)f_swap = 1'd1;", tb, flags=re.MULTILINE)
    assert first_swap is not None
    late = tb.replace(first_swap.group(0), first_swap.group(0).replace("f_swap = 1'd1;", ""), 1)
    nxt = f"        {int(first_swap.group(1)) + 1}: begin "
    late = late.replace(nxt, nxt + "f_swap = 1'd1; ", 1)
    with pytest.raises(RuntimeError, match="FAIL"):
        run_icarus(_write(tmp_path, verilog, late))
