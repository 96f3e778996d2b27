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
LayerNorm, softmax, GELU and the residual adds are float ops. With ``nonlinear: int`` the
PyTorch model runs the first three as integer kernels, which QONNX cannot express: the graph
holds the float operators (:func:`float_twin`) and says so in its ``codesign.nonlinear``
metadata. :func:`check_qonnx` runs the file with qonnx's executor and compares the logits with
the PyTorch fake-quant model (its float twin).

Many designs of one model (a run's export) share one traced graph: :class:`QonnxExporter`
traces the model with every point quantized once, and each design's graph is that template with
its own scales, bits and weights and without the Quant nodes it does not have.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codesign.atomic import write_atomic
from codesign.errors import UserError
from codesign.nn_attrs import child_module, tensor_attr
from codesign.quant import (
    FLOAT_BITS,
    IntNonlinear,
    LayerQuant,
    QuantAttention,
    QuantConfig,
    QuantConv2d,
    QuantLinear,
    QWeight,
    is_matmul_layer,
    layer_names,
    quantize_weight,
)
from codesign.quant._quantizers import pot_min_exponent, quantize_fixed, quantize_unsigned
from hwmodel.target.vit import vit_blocks

if TYPE_CHECKING:  # onnx loads when a graph is written (a finished re-run writes none)
    import onnx

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


def _check_uniform(kind: str, where: str) -> None:
    if kind not in ("fixed", "unsigned"):
        raise UserError(f"{where}: the {kind} quantizer has no QONNX form (only uniform quantizers)")


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


def _act(x: torch.Tensor, scale: float | None, bits: int, kind: str, where: str) -> torch.Tensor:
    """An activation quantization point (the ``_fq`` of :mod:`codesign.quant`) as a Quant node."""
    if scale is None or bits >= FLOAT_BITS:
        return x
    _check_uniform(kind, where)
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

    def _point(self, point: tuple[str, int, str], x: torch.Tensor) -> torch.Tensor:
        key, bits, kind = point
        scale = self.scales.get(key)
        if scale is not None and bits < FLOAT_BITS:
            self.labels.append(key)
        return _act(x, scale, bits, kind, key)


def float_twin(qmodel: nn.Module) -> nn.Module:
    """``qmodel`` with its integer softmax, LayerNorm and GELU (``nonlinear: int``) back in float:
    what its QONNX graph holds (QONNX has no integer form of them). ``qmodel`` itself when it
    has none."""
    if not any(isinstance(m, IntNonlinear) for m in qmodel.modules()):
        return qmodel
    model = copy.deepcopy(qmodel).eval()
    for name, mod in list(model.named_modules()):
        if isinstance(mod, IntNonlinear) and mod.kind != "softmax":  # the softmax: below
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, mod.float_module())
        elif isinstance(mod, QuantAttention):
            mod.int_softmax = None
    return model


def _float_copy(qmodel: nn.Module) -> nn.Module:
    """A copy of ``qmodel`` (one, whether or not :func:`float_twin` had to make one) with its
    non-linear operators in float, free to change."""
    twin = float_twin(qmodel)
    return copy.deepcopy(twin).eval() if twin is qmodel else twin


def _export_model(qmodel: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``qmodel`` (non-linear operators in float) whose quantized modules trace to
    Quant nodes; the list fills with the Quant nodes' names in graph order while it is traced."""
    model = _float_copy(qmodel)
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


def _trace(qmodel: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """The traced graph of ``qmodel`` with its Quant nodes named after their points."""
    import onnx

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
    return proto


@dataclass(frozen=True)
class PointSpec:
    """One Quant node of a design: scale, bit width, signedness and, for a weight part, the
    values it quantizes (:func:`weight_parts`)."""

    scale: torch.Tensor
    bits: int
    signed: bool
    values: torch.Tensor | None = None


def quant_points(qmodel: nn.Module) -> dict[str, PointSpec]:
    """Every Quant node the graph of ``qmodel`` has, by name (the points of the module docstring)."""
    out: dict[str, PointSpec] = {}
    for name, mod in qmodel.named_modules():
        if isinstance(mod, QuantLinear | QuantConv2d):
            if mod.act_scale is not None and mod.act_bits < FLOAT_BITS:
                out[f"{name}:a"] = PointSpec(_scalar(mod.act_scale), mod.act_bits, True)
            for part in weight_parts(mod.qweight) if mod.qweight is not None else []:
                out[name + part.suffix] = PointSpec(part.scale, part.bits, True, part.values)
        elif isinstance(mod, QuantAttention):
            for key, bits, kind in mod.points():
                scale = mod.scales.get(key)
                if scale is None or bits >= FLOAT_BITS:
                    continue
                _check_uniform(kind, key)
                out[key] = PointSpec(_scalar(scale), bits, kind == "fixed")
    return out


def _complete(qmodel: nn.Module) -> nn.Module:
    """A copy of ``qmodel`` with every point any design of its model can quantize: each weight
    layer with a quantized input and a mixed (fixed + PoT) weight, each attention block with its
    four points, the non-linear operators in float. Its graph is the template of every design's."""
    model = _float_copy(qmodel)
    full = LayerQuant(4, 8, 0.5)  # only the graph's shape matters: each design sets its own values
    wrapped = [n for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantConv2d)]
    for name in dict.fromkeys([n for n in layer_names(model) if not is_matmul_layer(n)] + wrapped):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        mod = getattr(parent, attr)
        weight = tensor_attr(mod, "weight").detach()
        qweight = quantize_weight(weight, full.weight_bits, full.pot_ratio, method="max")
        if isinstance(mod, QuantLinear | QuantConv2d):
            mod.qweight, mod.act_bits, mod.act_scale = qweight, full.act_bits, 1.0
        else:
            wrap = QuantConv2d if isinstance(mod, nn.Conv2d) else QuantLinear
            setattr(parent, attr, wrap(mod, qweight, full.act_bits, 1.0))
    for i, block in enumerate(vit_blocks(model)):
        attn = child_module(block, "attn")
        if not isinstance(attn, QuantAttention):
            attn = QuantAttention(attn, f"blocks.{i}.attn", full, full, {}, "uniform")
            block.attn = attn
        attn.qk = attn.sv = full
        attn.softmax_kind = "unsigned"
        attn.scales = {key: 1.0 for key, _, _ in attn.points()}
    return model


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray:
    from onnx import numpy_helper

    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


#: the inputs of a Quant node; a weight part's values are an input of its own, like the rest
_ROLES = ("values", "scale", "zeropt", "bitwidth")


def _is_weight(label: str) -> bool:
    return label.endswith((":w", ":w_pot"))


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nothing reads, then initializers and value_info nothing uses."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    produced = {o for n in graph.node for o in n.output}
    for v in [v for v in graph.value_info if v.name not in produced]:
        graph.value_info.remove(v)


class QonnxExporter:
    """Writes the QONNX graphs of designs of one model: the graph of :func:`_complete` is traced
    once and each design's graph is that template with the design's scales, bits and weight
    values set and the Quant nodes it does not have taken out (milliseconds instead of a trace).
    The result executes as the design's own traced graph does (tests/test_qonnx_export.py)."""

    def __init__(self, example: torch.Tensor) -> None:
        self.example = example
        self._template: onnx.ModelProto | None = None

    def _prepare(self, qmodel: nn.Module) -> onnx.ModelProto:
        from onnx import numpy_helper

        proto = _trace(_complete(qmodel), self.example)
        graph = proto.graph
        for node in [n for n in graph.node if n.op_type == "Quant"]:
            for i in range(0 if _is_weight(node.name) else 1, len(_ROLES)):
                own = f"{node.name}.{_ROLES[i]}"  # one initializer per input: set per design
                graph.initializer.append(numpy_helper.from_array(_constant(graph, node.input[i]), own))
                node.input[i] = own
        _prune(graph)
        return proto

    def graph(self, qmodel: nn.Module) -> onnx.ModelProto:
        """The QONNX graph of ``qmodel`` (metadata included)."""
        import onnx
        from onnx import numpy_helper

        config = getattr(qmodel, "quant_config", None)
        if not isinstance(config, QuantConfig):
            raise UserError("export_qonnx: not a model returned by quantize_model")
        points = quant_points(qmodel)
        if self._template is None:
            self._template = self._prepare(qmodel)
        proto = onnx.ModelProto()
        proto.CopyFrom(self._template)
        graph = proto.graph
        quants = {n.name: n for n in graph.node if n.op_type == "Quant"}
        unknown = sorted(set(points) - set(quants))
        if unknown:
            raise RuntimeError(f"QONNX export: point {unknown[0]} is not in the model's template graph")
        inits = {t.name: t for t in graph.initializer}

        def put(name: str, value: torch.Tensor | float) -> None:
            old = inits[name]
            array = np.asarray(value.detach().numpy() if isinstance(value, torch.Tensor) else value)
            new = numpy_helper.from_array(array.astype(np.float32).reshape(tuple(old.dims)), name)
            old.CopyFrom(new)

        rename: dict[str, str] = {}
        for label, node in quants.items():
            spec = points.get(label)
            if spec is None:
                continue
            put(f"{label}.scale", spec.scale)
            put(f"{label}.bitwidth", float(spec.bits))
            for a in node.attribute:
                if a.name == "signed":
                    a.i = int(spec.signed)
            if spec.values is not None:
                put(f"{label}.values", spec.values)
        drop: set[str] = set()
        for label, node in quants.items():
            if label in points or _is_weight(label):
                continue
            drop.add(label)  # an activation point the design leaves in float
            rename[node.output[0]] = node.input[0]
        for layer in {label.rsplit(":", 1)[0] for label in quants if _is_weight(label)}:
            parts = [quants[f"{layer}{s}"] for s in (":w", ":w_pot")]
            kept = [p for p in parts if p.name in points]
            if len(kept) == len(parts):
                continue
            add = next(n for n in graph.node if set(n.input) == {p.output[0] for p in parts})
            drop.update(p.name for p in parts if p not in kept)
            drop.add(add.name)
            if kept:
                rename[add.output[0]] = kept[0].output[0]
            else:  # a float weight
                weight = tensor_attr(qmodel.get_submodule(layer), "weight").detach()
                graph.initializer.append(numpy_helper.from_array(weight.numpy(), f"{layer}.weight"))
                rename[add.output[0]] = f"{layer}.weight"
        for node in [n for n in graph.node if n.name in drop]:
            graph.node.remove(node)
        for node in graph.node:
            for i, name in enumerate(node.input):
                while name in rename:
                    name = rename[name]
                node.input[i] = name
        _prune(graph)
        meta = {
            "codesign.quant_config": json.dumps(config.to_dict()),
            "codesign.pot_layers": json.dumps(pot_metadata(qmodel)),
        }
        if config.nonlinear == "int":
            meta["codesign.nonlinear"] = NONLINEAR_NOTE
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "codesign"
        return proto

    def export(self, qmodel: nn.Module, path: Path) -> Path:
        """Write the QONNX graph of ``qmodel`` (a model of :func:`codesign.quant.quantize_model`)."""
        import onnx

        proto = self.graph(qmodel)
        return write_atomic(path, lambda tmp: onnx.save(proto, str(tmp)))


#: in the metadata of a design whose softmax, LayerNorm and GELU are integer kernels
NONLINEAR_NOTE = (
    "int: the accelerator runs softmax, LayerNorm and GELU as the integer kernels of "
    "hwmodel/arch/intops.py; QONNX has no form of them, so this graph holds the float operators"
)


def export_qonnx(qmodel: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Write the QONNX graph of ``qmodel`` to ``path``; ``example``: one input batch (its shape,
    batch dimension dynamic). Exporting many designs of one model: :class:`QonnxExporter`."""
    return QonnxExporter(example).export(qmodel, path)


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
        want = float_twin(qmodel)(images).numpy()
    per_image = np.abs(got - want).max(axis=-1)
    return QonnxCheck(
        images=int(images.shape[0]),
        quant_nodes=quant_nodes,
        max_abs_logit_diff=float(per_image.max()),
        median_abs_logit_diff=float(np.median(per_image)),
        images_differing=int((per_image > DIFF_TOLERANCE).sum()),
        argmax_agreement_pct=100.0 * float((got.argmax(-1) == want.argmax(-1)).mean()),
    )
