"""``codesign.layersim``: one layer of a compiled program simulated alone on the whole top-level
(Verilator), bit-exact against the reference semantics — a GEMM and a non-linear op of a tiny
random ViT — and its bad input (unknown layer, model or device) as one line, exit 2. The DeiT-B
fc1 run on the default ZCU102 design is a documented benchmark, not a test."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from test_quant_model import tiny_vit

from codesign.cli.layersim import Design, dram_before, entry, find_op, layersim, one_op_image, prepare_design
from codesign.program import execute
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.rtl.verilator import verilator_available
from hwmodel.target.device import load_device


@cache
def _design() -> Design:
    """The tiny ViT (2 blocks, 24 channels) on an 8 × 16 ZCU102 array with 8 × 16 × 16 tiles and 2
    non-linear lanes a kind."""
    accel = AcceleratorConfig(
        freq_mhz=200, rows=8, cols=16, default=LayerHw(tm=8, tn=16, tk=16), nonlinear_lanes=2
    )
    return prepare_design(tiny_vit(), "tiny_vit", load_device("zcu102"), accel)


def test_the_one_op_image_runs_only_that_op() -> None:
    """The DRAM image before op i, plus the one-op program, equals the whole program's run up to
    op i + 1 after the reference runs it (the image the RTL is held to)."""
    design = _design()
    index = find_op(design.program, "blocks.1.attn.qkv")
    x = torch.randn(1, *design.input_shape, generator=torch.Generator().manual_seed(0))
    before = dram_before(design, index, x)
    after_next = dram_before(design, index + 1, x)
    base = one_op_image(before, design.program, design.program.descriptors[index])
    assert execute(before, base) == 1
    size = len(design.program.encoded())
    np.testing.assert_array_equal(before[size:], after_next[size:])


@pytest.mark.skipif(not verilator_available(), reason="verilator not installed")
@pytest.mark.slow
@pytest.mark.parametrize("layer", ["blocks.0.mlp.fc1", "blocks.1.attn.softmax"])
def test_one_layer_on_the_top_is_bit_exact(layer: str) -> None:
    """A GEMM and a non-linear op, each on a top sized for it: the whole DRAM image after the op
    as the reference semantics leave it, the cycles counted, the model's beside them."""
    result = layersim(_design(), layer, n_images=1)
    assert result.images == 1 and result.bit_exact_images == 1
    assert result.output_bytes > 0 and result.mismatched_dram_bytes == 0
    assert result.sim_cycles > 0 and result.model_busy_cycles > 0
    assert result.kind == ("fc1" if layer.endswith("fc1") else "softmax")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "default_vit_mnist", "--layer", "blocks.0.mlp.fc9", "--no-sim"],
            "no layer 'blocks.0.mlp.fc9'",
        ),
        (["--model", "no_such_vit", "--no-sim"], "unknown timm model 'no_such_vit'"),
        (["--model", "default_vit_mnist", "--device", "zcu999", "--no-sim"], "unknown device 'zcu999'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("codesign.layersim: error: ") and message in err
