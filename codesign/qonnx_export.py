"""QONNX export of a fake-quantized model (``designs/<trial>/model.qonnx.onnx``) and its check.

The graph is the PyTorch fake-quant model traced by ``torch.onnx`` with every quantization point
as a QONNX ``Quant`` node (domain ``qonnx.custom_op.general``: ``y = s·clamp(round(x/s), lo, hi)``,
round half to even as ``torch.round``; inputs ``x, scale, zeropt = 0, bitwidth``; ``signed``,
``narrow = 0``), named after its quantization point:

* ``<layer>:w``      a weight (per-output-channel ``scale [C, 1]``, the layer's weight bits) for
  the fixed-point channels;
* ``<layer>:w_pot``  the power-of-two channels of the layer. QONNX has no power-of-two quantizer:
  a ``pot<b>`` weight ±s·2^e (e ∈ [e_min, 0], e_min = −(2^(b−1)−2)) is exactly a uniform code of
  the grid s·2^e_min with 2 − e_min bits (8 bits for pot4, 4 for pot3), so the node carries that
  uniform grid and its bits, and the model's ``codesign.pot_layers`` metadata names the layers,
  their PoT bits and channel masks. A mixed layer adds the two (each zero where the other one's
  channels are);
* ``<layer>:a``      the input activation of a layer (per tensor, signed); ``<attn>.qk:a/b`` Q
  and K, ``<attn>.sv:a`` the softmax output (unsigned) and ``<attn>.sv:b`` V.

The ``log2`` softmax quantizer is not a uniform grid: a design using it is refused (one line).
LayerNorm, softmax, GELU and the residual adds stay float, as in the PyTorch model.
:func:`check_qonnx` runs the file with qonnx's executor and compares the logits with the PyTorch
fake-quant model.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codesign.atomic import write_atomic
from codesign.errors import UserError
from codesign.quant import QuantAttention, QuantConfig, QuantConv2d, QuantLinear, QWeight
from codesign.quant._quantizers import pot_min_exponent, quantize_fixed, quantize_unsigned

QONNX_FILE = "model.qonnx.onnx"
QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class _Quant(torch.autograd.Function):
    """Our uniform quantizer in PyTorch; a QONNX ``Quant`` node in the exported graph."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
        return quantize_fixed(x, scale, bits) if signed else quantize_unsigned(x, scale, bits)

    @staticmethod
    def symbolic(g: Any, x: Any, scale: Any, bits: int, signed: bool) -> Any:
        zero = g.op("Constant", value_t=torch.tensor(0.0))
        width = g.op("Constant", value_t=torch.tensor(float(bits)))
        out = g.op(
            f"{QONNX_DOMAIN}::Quant",
            x,
            scale,
            zero,
            width,
            signed_i=int(signed),
            narrow_i=0,
            rounding_mode_s="ROUND",
        )
        out.setType(x.type())  # the shape and type of its input (a convolution needs its kernel's)
        return out


def _quant(x: torch.Tensor, scale: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
    out: torch.Tensor = _Quant.apply(x, scale, bits, signed)  # type: ignore[no-untyped-call]
    return out


def _act(x: torch.Tensor, scale: float | None, bits: int, kind: str, where: str) -> torch.Tensor:
    """An activation quantization point (the ``_fq`` of :mod:`codesign.quant`) as a Quant node."""
    if scale is None or bits >= 32:
        return x
    if kind not in ("fixed", "unsigned"):
        raise UserError(f"{where}: the {kind} quantizer has no QONNX form (only uniform quantizers)")
    return _quant(x, torch.tensor(scale, dtype=x.dtype), bits, kind == "fixed")


@dataclass(frozen=True)
class WeightPart:
    """One Quant node of a weight: the values it quantizes, their scales and its bit width."""

    suffix: str
    values: torch.Tensor
    scale: torch.Tensor
    bits: int


def weight_parts(qw: QWeight) -> list[WeightPart]:
    """The fixed-point and power-of-two channels of ``qw`` as uniform Quant inputs whose
    quantization reproduces ``qw.dequantize()`` exactly (see the module docstring)."""
    w = qw.dequantize()
    shape = (-1, *([1] * (w.ndim - 1)))
    mask = qw.pot_mask.reshape(shape)
    scale = qw.scale.float().reshape(shape)
    parts = []
    if not bool(qw.pot_mask.all()):
        parts.append(WeightPart(":w", torch.where(mask, 0.0, w), torch.where(mask, 1.0, scale), qw.bits))
    if bool(qw.pot_mask.any()):
        e_min = pot_min_exponent(qw.bits)
        grid = torch.where(mask, scale * 2.0**e_min, 1.0)
        parts.append(WeightPart(":w_pot", torch.where(mask, w, 0.0), grid, 2 - e_min))
    return parts


class _ExportWeights(nn.Module):
    """The Quant nodes of one weight, summed (a mixed layer has two)."""

    def __init__(self, qw: QWeight, name: str, labels: list[str]) -> None:
        super().__init__()
        self.parts = weight_parts(qw)
        for i, part in enumerate(self.parts):
            self.register_buffer(f"values{i}", part.values.clone())
            self.register_buffer(f"scale{i}", part.scale.clone())
        self.name, self.labels = name, labels

    def forward(self) -> torch.Tensor:
        total: torch.Tensor | None = None
        for i, part in enumerate(self.parts):
            self.labels.append(self.name + part.suffix)
            q = _quant(getattr(self, f"values{i}"), getattr(self, f"scale{i}"), part.bits, True)
            total = q if total is None else total + q
        assert total is not None
        return total


class _ExportLinear(nn.Module):
    def __init__(self, mod: QuantLinear | QuantConv2d, name: str, labels: list[str]) -> None:
        super().__init__()
        self.mod, self.name, self.labels = mod, name, labels
        self.weights = None if mod.qweight is None else _ExportWeights(mod.qweight, name, labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mod
        if m.act_scale is not None and m.act_bits < 32:
            self.labels.append(f"{self.name}:a")
        x = _act(x, m.act_scale, m.act_bits, "fixed", self.name)
        w = m.weight if self.weights is None else self.weights()
        if isinstance(m, QuantConv2d):
            return F.conv2d(x, w, m.bias, m.stride, m.padding, m.dilation, m.groups)
        return F.linear(x, w, m.bias)


class _ExportAttention(QuantAttention):
    """:class:`QuantAttention` whose quantization points are Quant nodes."""

    labels: list[str]

    def _point(self, key: str, x: torch.Tensor, bits: int, kind: str) -> torch.Tensor:
        scale = self.scales.get(key)
        if scale is not None and bits < 32:
            self.labels.append(key)
        return _act(x, scale, bits, kind, key)


def _export_model(qmodel: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``qmodel`` whose quantized modules trace to Quant nodes; the list fills with
    the Quant nodes' names in graph order while it is traced."""
    model = copy.deepcopy(qmodel).eval()
    labels: list[str] = []
    for name, mod in list(model.named_modules()):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(mod, QuantLinear | QuantConv2d):
            setattr(parent, attr, _ExportLinear(mod, name, labels))
        elif isinstance(mod, QuantAttention):
            mod.__class__ = _ExportAttention  # same state, Quant-node quantization points
            setattr(mod, "labels", labels)  # noqa: B010
    return model, labels


def pot_metadata(qmodel: nn.Module) -> dict[str, dict[str, Any]]:
    """Per layer with power-of-two channels: its PoT bits and the channel mask."""
    out: dict[str, dict[str, Any]] = {}
    for name, mod in qmodel.named_modules():
        if (
            isinstance(mod, QuantLinear | QuantConv2d)
            and mod.qweight is not None
            and mod.qweight.pot_mask.any()
        ):
            qw = mod.qweight
            out[name] = {"pot_bits": qw.bits, "pot_channels": [int(i) for i in qw.pot_mask.nonzero()[:, 0]]}
    return out


def export_qonnx(qmodel: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Write the QONNX graph of ``qmodel`` (a model of :func:`codesign.quant.quantize_model`) to
    ``path``; ``example``: one input batch (its shape, batch dimension dynamic)."""
    import onnx

    config = getattr(qmodel, "quant_config", None)
    if not isinstance(config, QuantConfig):
        raise UserError("export_qonnx: not a model returned by quantize_model")
    model, labels = _export_model(qmodel)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = Path(tmp) / "traced.onnx"
        torch.onnx.export(
            model,
            (example,),
            str(traced),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        proto = onnx.load(str(traced))
    quants = [n for n in proto.graph.node if n.op_type == "Quant"]
    if len(quants) != len(labels):
        raise RuntimeError(f"QONNX export: {len(quants)} Quant nodes for {len(labels)} quantization points")
    for node, label in zip(quants, labels, strict=True):
        node.name = label
    meta = {
        "codesign.quant_config": json.dumps(config.to_dict()),
        "codesign.pot_layers": json.dumps(pot_metadata(qmodel)),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "codesign"
    return write_atomic(path, lambda tmp: onnx.save(proto, str(tmp)))


#: a logit this far from PyTorch's counts as differing (float rounding alone stays near 1e-6)
DIFF_TOLERANCE = 1e-4


@dataclass(frozen=True)
class QonnxCheck:
    """The exported graph run by qonnx's executor against the PyTorch fake-quant model."""

    images: int
    quant_nodes: int
    max_abs_logit_diff: float
    median_abs_logit_diff: float
    #: images with a logit more than DIFF_TOLERANCE away: onnxruntime's float kernels moved an
    #: activation across a rounding boundary of its quantizer (one code step)
    images_differing: int
    argmax_agreement_pct: float


def run_qonnx(path: Path, images: torch.Tensor) -> tuple[np.ndarray, int]:
    """Logits of the QONNX file at ``path`` on ``images`` (qonnx's executor, node by node, one
    batch: its cost is mostly per node, not per image) and the graph's Quant node count."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    if not path.is_file():
        raise UserError(f"{path} not found (export the design again)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qonnx warns about every shape the dynamic batch leaves open
        wrapper = ModelWrapper(str(path)).transform(ChangeBatchSize(int(images.shape[0])))
        wrapper = wrapper.transform(InferShapes())
        logits = execute_onnx(wrapper, {INPUT_NAME: images.numpy()})[OUTPUT_NAME]
    return np.asarray(logits), len(wrapper.get_nodes_by_op_type("Quant"))


def check_qonnx(path: Path, qmodel: nn.Module, images: torch.Tensor) -> QonnxCheck:
    """Run ``path`` with qonnx's executor on ``images`` and compare with ``qmodel``'s logits."""
    if images.shape[0] == 0:
        raise UserError("no test images to check the QONNX graph on")
    got, quant_nodes = run_qonnx(path, images)
    with torch.no_grad():
        want = qmodel(images).numpy()
    per_image = np.abs(got - want).max(axis=-1)
    return QonnxCheck(
        images=int(images.shape[0]),
        quant_nodes=quant_nodes,
        max_abs_logit_diff=float(per_image.max()),
        median_abs_logit_diff=float(np.median(per_image)),
        images_differing=int((per_image > DIFF_TOLERANCE).sum()),
        argmax_agreement_pct=100.0 * float((got.argmax(-1) == want.argmax(-1)).mean()),
    )
