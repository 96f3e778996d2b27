"""QONNX export: Quant nodes with each point's bits, executed by qonnx against the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_quant_model import tiny_vit

from codesign.errors import UserError
from codesign.qonnx_export import (
    QonnxExporter,
    _trace,
    export_qonnx,
    float_twin,
    run_qonnx,
    weight_parts,
)
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


#: the shapes of design a run exports: mixed, fixed, all-PoT, float layers and points, integer
#: non-linear operators (the graph holds them in float), a float weight with a quantized input
TEMPLATE_CASES = {
    "mixed": QuantConfig.uniform("W4A8P0.5").with_layers({"head": "W8A8"}),
    "fixed": QuantConfig.uniform("W6A6"),
    "all-pot": QuantConfig.uniform("W4A8P1.0"),
    "float-parts": QuantConfig.uniform("W5A8P0.25").with_layers(
        {"blocks.0.mlp.fc1": "W32A32", "blocks.1.attn.qk": "W32A32", "patch_embed.proj": "W32A8"}
    ),
    "int-nonlinear": QuantConfig.uniform("W8A8", nonlinear="int"),
}


def test_template_graphs_run_as_each_designs_own_trace(
    default: tuple[torch.nn.Module, torch.Tensor, Calibration], tmp_path: Path
) -> None:
    """One exporter (one traced template) for designs of every shape: each graph has the Quant
    nodes of the design's own trace, with the same bits, and qonnx's executor gives the same
    logits as on that trace and as the PyTorch model (its float twin)."""
    model, images, cal = default
    exporter = QonnxExporter(images[:2])
    batch = torch.cat([images, images.flip(0)])
    for name, config in TEMPLATE_CASES.items():
        qmodel = quantize_model(model, config, cal)
        fast = exporter.export(qmodel, tmp_path / f"{name}.onnx")
        own = tmp_path / f"{name}.traced.onnx"
        onnx.save(_trace(qmodel, images[:2]), str(own))
        assert _bits_of(fast) == _bits_of(own), name
        got, nodes = run_qonnx(fast, batch)
        want, _ = run_qonnx(own, batch)
        assert nodes == len(_bits_of(own))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=name)
        with torch.no_grad():
            ref = float_twin(qmodel)(batch).numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4, err_msg=name)
        meta = {p.key: p.value for p in onnx.load(str(fast)).metadata_props}
        assert ("codesign.nonlinear" in meta) == (config.nonlinear == "int"), name
    assert "blocks.0.mlp.fc1:w" not in _bits_of(tmp_path / "float-parts.onnx")
    assert "patch_embed.proj:a" in _bits_of(tmp_path / "float-parts.onnx")
