"""QONNX export: Quant nodes with each point's bits, executed by qonnx against the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper
from test_quant_model import tiny_vit

from codesign.errors import UserError
from codesign.qonnx_export import export_qonnx, weight_parts
from codesign.quant import Calibration, QuantConfig, quantize_model, quantize_weight
from codesign.quant._quantizers import pot_min_exponent


@pytest.fixture(scope="module")
def default() -> tuple[torch.nn.Module, torch.Tensor, Calibration]:
    """A 2-block ViT of the default's shape (the default's own graph runs in test_search.py)."""
    model = tiny_vit()
    images = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    return model, images[:2], Calibration(model, images)


def _bits_of(path: Path) -> dict[str, tuple[float, int]]:
    """Quant node name → (bit width, signed)."""
    graph = onnx.load(str(path)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    out = {}
    for node in graph.node:
        if node.op_type == "Quant":
            signed = next(a.i for a in node.attribute if a.name == "signed")
            out[node.name] = (float(consts[node.input[3]]), int(signed))
    return out


@pytest.mark.parametrize("precision", ["W4A8P0.5"])
def test_qonnx_graph_carries_each_points_bits(
    precision: str, default: tuple[torch.nn.Module, torch.Tensor, Calibration], tmp_path: Path
) -> None:
    """(The graph is executed against PyTorch on a run's design in test_search.py.)"""
    model, images, cal = default
    config = QuantConfig.uniform(precision).with_layers({"head": "W8A8"})
    qmodel = quantize_model(model, config, cal)
    path = export_qonnx(qmodel, images[:2], tmp_path / "model.qonnx.onnx")
    bits = _bits_of(path)
    lq = config.default
    # per block: 4 weights and their 4 inputs (qkv, proj, fc1, fc2), Q, K, softmax output, V;
    # patch embedding and head: weight and input; PoT: one more weight node in every layer but the head
    assert len(bits) == 2 * 12 + 2 + 2 + (2 * 4 + 1 if lq.pot_ratio > 0 else 0)
    pot_bits = 2 - pot_min_exponent(lq.weight_bits)
    assert bits["blocks.0.attn.qkv:w"] == (lq.weight_bits, 1)
    assert bits["blocks.0.mlp.fc1:a"] == (lq.act_bits, 1)
    assert bits["blocks.0.attn.sv:a"] == (lq.act_bits, 0)  # softmax output: unsigned
    assert bits["blocks.0.attn.qk:b"] == (lq.weight_bits, 1)  # K at the weight bits
    assert bits["head:w"] == (8, 1) and "head:w_pot" not in bits
    assert ("blocks.0.attn.qkv:w_pot" in bits) == (lq.pot_ratio > 0)
    if lq.pot_ratio > 0:
        assert bits["blocks.0.attn.qkv:w_pot"] == (pot_bits, 1)
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert '"blocks.0.attn.qkv"' in meta["codesign.pot_layers"]


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_pot_channels_are_exact_on_their_uniform_grid(bits: int) -> None:
    w = torch.randn(12, 20, generator=torch.Generator().manual_seed(bits))
    qw = quantize_weight(w, bits, 0.5)
    total = torch.zeros_like(w)
    for part in weight_parts(qw):
        q = torch.clamp(
            torch.round(part.values / part.scale), -(2 ** (part.bits - 1)), 2 ** (part.bits - 1) - 1
        )
        assert torch.equal(q * part.scale, part.values)  # the Quant node leaves the weight as it is
        total += q * part.scale
    assert torch.equal(total, qw.dequantize())


def test_log2_softmax_is_refused_in_one_line(
    default: tuple[torch.nn.Module, torch.Tensor, Calibration], tmp_path: Path
) -> None:
    model, images, cal = default
    qmodel = quantize_model(model, QuantConfig.uniform("W8A8", softmax="log2"), cal)
    with pytest.raises(UserError, match="log2 quantizer has no QONNX form"):
        export_qonnx(qmodel, images[:2], tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
