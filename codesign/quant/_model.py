"""Fake-quantize a timm VisionTransformer by a per-layer :class:`QuantConfig`.

GEMM layer names: :mod:`hwmodel.target.vit` (the naming ``hwmodel.target.workload`` uses too):
``patch_embed.proj``, ``blocks.{i}.attn.{qkv,qk,sv,proj}``, ``blocks.{i}.mlp.{fc1,fc2}``, ``head``.

Quantization points: each weight layer quantizes its weight (per output channel; mixed scheme:
``pot_ratio`` of the output channels power-of-two, for ``qkv`` the same count in every head of
Q, K and V) and its input activation (``<layer>:a``, per tensor, signed). ``qk`` quantizes Q
(``qk:a``, act_bits) and K (``qk:b``, weight_bits); ``sv`` the softmax probabilities (``sv:a``,
act_bits, unsigned or log2) and V (``sv:b``, weight_bits). Activation scales are calibrated on
the FP32 model's activations for a calibration batch. Residual adds stay in float; softmax,
LayerNorm and GELU stay in float (``nonlinear: float``) or run as the integer kernels of
:mod:`hwmodel.arch.intops` (``nonlinear: int``, :class:`IntNonlinear`; per kind the variant the
config's ``kernels`` chooses, ``poly`` or ``shift``) on 16-bit fixed-point codes of their input
(points ``<module>:in`` and ``blocks.{i}.attn.softmax:in``; power-of-two scales from the
calibrated range). A layer at 32/32 bits is left untouched, so ``W32A32`` with float
non-linear operators equals FP32 exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from codesign.errors import UserError
from codesign.nn_attrs import child_module, number_attr, tensor_attr
from codesign.quant._config import FLOAT_BITS, LayerQuant, QuantConfig
from codesign.quant._quantizers import (
    QUANTIZERS,
    channel_scales,
    fixed_codes,
    pot_codes,
    pot_decode,
    tensor_scale,
)
from hwmodel.arch.intops import NONLINEAR_BITS, frac_bits_for, kernel
from hwmodel.target.vit import is_matmul_layer, layer_names, vit_blocks

EXPORT_FORMAT = "codesign-int/1"
_SAMPLE_PER_POINT = 1 << 16


# ----------------------------------------------------------------------------- model structure


def _weight_groups(model: nn.Module, name: str) -> int:
    """Channel groups that share the PoT ratio: every head of Q, K and V for ``qkv``."""
    if name.endswith(".attn.qkv"):
        attn = model.get_submodule(name.rsplit(".", 1)[0])
        return 3 * int(number_attr(attn, "num_heads"))
    return 1


def nonlinear_modules(model: nn.Module) -> list[tuple[str, str]]:
    """(module name, kind) of every LayerNorm and GELU module (``nonlinear: int`` replaces them)."""
    out: list[tuple[str, str]] = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.LayerNorm):
            out.append((name, "layernorm"))
        elif isinstance(mod, nn.GELU):
            out.append((name, "gelu"))
    return out


def softmax_point(attn_name: str) -> str:
    """The quantization point of the softmax input (the logits) of an attention module."""
    return f"{attn_name}.softmax:in"


def _check_names(model: nn.Module, config: QuantConfig) -> list[str]:
    names = layer_names(model)
    unknown = sorted(set(config.layers) - set(names))
    if unknown:
        depth = len(vit_blocks(model))
        raise UserError(
            f"unknown layer {unknown[0]!r} in quant config; layers are patch_embed.proj, "
            f"blocks.{{0..{depth - 1}}}.attn.{{qkv,qk,sv,proj}}, blocks.{{i}}.mlp.{{fc1,fc2}}, head"
        )
    return names


# ----------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class QWeight:
    """An integer weight: codes ``[C, ...]`` (int8/int16), scales ``[C]``, PoT channel mask ``[C]``.

    Fixed-point channels hold q (x̂ = s·q); PoT channels hold 0 or ±(e − e_min + 1) (x̂ = ±s·2^e).
    """

    bits: int
    codes: torch.Tensor
    scale: torch.Tensor
    pot_mask: torch.Tensor

    def dequantize(self) -> torch.Tensor:
        c = self.codes.float()
        shape = (-1, *([1] * (c.ndim - 1)))
        if bool(self.pot_mask.any()):  # (most layers have no PoT channel: nothing to decode)
            c = torch.where(self.pot_mask.reshape(shape), pot_decode(c, self.bits), c)
        return c * self.scale.float().reshape(shape)

    @property
    def pot_ratio(self) -> float:
        return float(self.pot_mask.float().mean())


def quantize_weight(
    w: torch.Tensor,
    bits: int,
    pot_ratio: float,
    groups: int = 1,
    method: str = "mse",
    scales: Callable[[str], torch.Tensor] | None = None,
) -> QWeight:
    """Per-output-channel quantization of ``w [C, ...]``; mixed when 0 < pot_ratio < 1.

    In each of ``groups`` equal channel groups, round(pot_ratio · group size) channels are PoT: the
    ones whose squared error grows least when switched from fixed-point to PoT. ``scales(kind)``
    gives the per-channel scales of quantizer ``kind`` (``fixed``/``pot``) when already known
    (default: :func:`channel_scales` of ``w``, ``bits``, ``method``).
    """
    w = w.detach().float()
    n_out = w.shape[0]
    if n_out % groups:
        raise ValueError(f"{n_out} channels do not split into {groups} groups")
    fixed, pot = QUANTIZERS["fixed"], QUANTIZERS["pot"]
    scale_of = scales or (lambda kind: channel_scales(w, bits, QUANTIZERS[kind], method))
    s_fix = scale_of("fixed")
    mask = torch.zeros(n_out, dtype=torch.bool, device=w.device)
    if pot_ratio > 0:
        s_pot = scale_of("pot")
        gsize = n_out // groups
        n_pot = round(pot_ratio * gsize)
        if n_pot >= gsize:
            mask[:] = True
        elif n_pot > 0:
            dims = tuple(range(1, w.ndim))
            e_fix = ((fixed(w, s_fix, bits) - w) ** 2).sum(dims)
            e_pot = ((pot(w, s_pot, bits) - w) ** 2).sum(dims)
            cost = (e_pot - e_fix).reshape(groups, gsize)
            pick = cost.argsort(dim=1)[:, :n_pot] + torch.arange(groups, device=w.device)[:, None] * gsize
            mask[pick.flatten()] = True
        shape = (-1, *([1] * (w.ndim - 1)))
        scale = torch.where(mask.reshape(shape), s_pot, s_fix)
    else:
        scale = s_fix
    shape = (-1, *([1] * (w.ndim - 1)))
    codes = torch.where(mask.reshape(shape), pot_codes(w, scale, bits), fixed_codes(w, scale, bits))
    dtype = torch.int8 if bits <= 8 else torch.int16
    return QWeight(bits, codes.to(dtype), scale.reshape(-1).clone(), mask)


# ----------------------------------------------------------------------------- modules


def _fq(x: torch.Tensor, scale: float | None, bits: int, kind: str) -> torch.Tensor:
    """Fake-quantize an activation; while training (``x`` needs a gradient) the gradient passes
    straight through (STE), otherwise the result is exactly the quantizer's."""
    if scale is None or bits >= FLOAT_BITS:
        return x
    q = QUANTIZERS[kind](x, torch.tensor(scale, dtype=x.dtype), bits)
    return x + (q - x).detach() if x.requires_grad else q


class QuantLinear(nn.Module):
    """``nn.Linear`` with fake-quantized weight (precomputed) and input activation."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self, linear: nn.Linear, qweight: QWeight | None, act_bits: int, act_scale: float | None
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach() if qweight is None else qweight.dequantize()
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())
        self.qweight = qweight
        self.act_bits = act_bits
        self.act_scale = act_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(_fq(x, self.act_scale, self.act_bits, "fixed"), self.weight, self.bias)


class QuantConv2d(nn.Module):
    """The patch-embedding ``nn.Conv2d`` with fake-quantized weight and input."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self, conv: nn.Conv2d, qweight: QWeight | None, act_bits: int, act_scale: float | None
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        if isinstance(conv.padding, str):
            raise UserError("patch_embed.proj: string padding is not supported")
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.kernel_size = conv.kernel_size
        weight = conv.weight.detach() if qweight is None else qweight.dequantize()
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.qweight = qweight
        self.act_bits = act_bits
        self.act_scale = act_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _fq(x, self.act_scale, self.act_bits, "fixed")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class IntNonlinear(nn.Module):
    """Softmax (last axis), LayerNorm or GELU as its integer kernel
    (:data:`hwmodel.arch.intops.KERNELS` ``[kind][variant]``: ``poly`` or ``shift``).

    x → q = clamp(round(x·2^F), ±2^15) (F from the power-of-two ``in_scale`` = 2^−F) → kernel →
    y·2^−out_frac. LayerNorm's γ, β then apply in float: the LayerNorm output feeds only the next
    linear layer, where the hardware folds them into the weights and bias. While training (``x``
    needs a gradient) the gradient is the float operator's (straight-through estimator: the
    forward value is the kernel's, the backward pass that of softmax, (x − μ)/σ or GELU).
    """

    weight: torch.Tensor | None
    bias: torch.Tensor | None

    def __init__(
        self,
        kind: str,
        in_scale: float,
        affine: nn.LayerNorm | None = None,
        approximate: str = "none",
        variant: str = "poly",
    ) -> None:
        super().__init__()
        frac = -math.log2(in_scale)
        if frac != round(frac):
            raise ValueError(f"{kind}: input scale {in_scale} is not a power of two")
        self.kind = kind
        self.variant = variant
        self.op = kernel(kind, variant)
        self.in_scale = in_scale
        self.spec = self.op.spec(NONLINEAR_BITS, round(frac), NONLINEAR_BITS)
        weight: torch.Tensor | None = None if affine is None else affine.weight
        bias: torch.Tensor | None = None if affine is None else affine.bias
        self.register_buffer("weight", None if weight is None else weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        # what the float operator needs (:meth:`float_module`)
        self.normalized_shape = None if affine is None else tuple(affine.normalized_shape)
        self.eps = 1e-5 if affine is None else float(affine.eps)
        self.approximate = approximate

    def float_module(self) -> nn.Module:
        """The float operator this kernel stands for (LayerNorm with the same γ, β and ε, GELU;
        the softmax is a function: an identity stand-in is refused)."""
        if self.kind == "gelu":
            return nn.GELU(approximate=self.approximate)
        if self.kind != "layernorm":
            raise ValueError(f"{self.kind}: not a module of the float model")
        shape = self.normalized_shape or (int(self.weight.shape[-1]) if self.weight is not None else 0,)
        ln = nn.LayerNorm(
            shape, eps=self.eps, elementwise_affine=self.weight is not None, bias=self.bias is not None
        )
        with torch.no_grad():
            if self.weight is not None:
                ln.weight.copy_(self.weight)
            if self.bias is not None:
                ln.bias.copy_(self.bias)
        return ln

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer input codes (int64)."""
        return fixed_codes(x.detach(), torch.tensor(self.in_scale, dtype=x.dtype), NONLINEAR_BITS).long()

    def _float_op(self, x: torch.Tensor) -> torch.Tensor:
        """The float operator the kernel approximates, without LayerNorm's γ, β (the STE's gradient)."""
        if self.kind == "softmax":
            return x.softmax(dim=-1)
        if self.kind == "layernorm":
            return F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return F.gelu(x, approximate=self.approximate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(self.codes(x).cpu().numpy(), self.spec)
        out = torch.from_numpy(y).to(device=x.device, dtype=x.dtype) * 2.0**-self.spec.out_frac
        if x.requires_grad:  # straight-through: the kernel's value (exactly), the float operator's gradient
            ref = self._float_op(x)
            out = out + (ref - ref.detach())
        if self.weight is not None:
            out = out * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out


Observer = Callable[[str, torch.Tensor], None]


class QuantAttention(nn.Module):
    """timm ``Attention`` with explicit, fake-quantized Q·Kᵀ and softmax·V products."""

    def __init__(
        self,
        attn: nn.Module,
        name: str,
        qk: LayerQuant,
        sv: LayerQuant,
        scales: Mapping[str, float | None],
        softmax: str,
        observer: Observer | None = None,
        int_softmax: IntNonlinear | None = None,
    ) -> None:
        super().__init__()
        self.qkv, self.proj = child_module(attn, "qkv"), child_module(attn, "proj")
        self.q_norm, self.k_norm = child_module(attn, "q_norm"), child_module(attn, "k_norm")
        self.norm = child_module(attn, "norm")
        self.num_heads = int(number_attr(attn, "num_heads"))
        self.head_dim = int(number_attr(attn, "head_dim"))
        self.attn_dim = int(getattr(attn, "attn_dim", self.num_heads * self.head_dim))
        self.scale = number_attr(attn, "scale")
        self.name = name
        self.qk, self.sv = qk, sv
        self.scales = dict(scales)
        self.softmax_kind = "log2" if softmax == "log2" else "unsigned"
        self.observer = observer
        self.int_softmax = int_softmax

    def points(self) -> list[tuple[str, int, str]]:
        """(point, bits, quantizer) of Q, K, the softmax output and V, in that order."""
        pqk, psv = f"{self.name}.qk", f"{self.name}.sv"
        return [
            (f"{pqk}:a", self.qk.act_bits, "fixed"),
            (f"{pqk}:b", self.qk.weight_bits, "fixed"),
            (f"{psv}:a", self.sv.act_bits, self.softmax_kind),
            (f"{psv}:b", self.sv.weight_bits, "fixed"),
        ]

    def _point(self, point: tuple[str, int, str], x: torch.Tensor) -> torch.Tensor:
        key, bits, kind = point
        if self.observer is not None:
            self.observer(key, x)
        return _fq(x, self.scales.get(key), bits, kind)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        pq, pk, pp, pv = self.points()
        q, k = self._point(pq, q), self._point(pk, k)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if attn_mask is not None:
            attn = attn + attn_mask
        if is_causal:
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            attn = attn.masked_fill(causal, float("-inf"))
        if self.observer is not None:
            self.observer(softmax_point(self.name), attn)
        attn = attn.softmax(dim=-1) if self.int_softmax is None else self.int_softmax(attn)
        attn, v = self._point(pp, attn), self._point(pv, v)
        out = (attn @ v).transpose(1, 2).reshape(b, n, self.attn_dim)
        result: torch.Tensor = self.proj(self.norm(out))
        return result


# ----------------------------------------------------------------------------- calibration


class Calibration:
    """FP32 activation statistics of a model on a calibration batch, plus memoised scales/weights.

    Build once per (model, calibration batch) and pass it to :func:`quantize_model` instead of the
    batch: scales and quantized weights are then computed once per (layer, bits, method) and reused.
    """

    def __init__(self, model: nn.Module, calib: torch.Tensor, seed: int = 0) -> None:
        self.model = model
        self.n_images = int(calib.shape[0])
        gen = torch.Generator().manual_seed(seed)
        self._samples: dict[str, torch.Tensor] = {}
        self._amax: dict[str, float] = {}
        self._scale_memo: dict[tuple[str, int, str, str], float] = {}
        self._weight_memo: dict[tuple[str, int, float, str], QWeight] = {}
        self._channel_scale_memo: dict[tuple[str, int, str, str], torch.Tensor] = {}

        def observe(key: str, x: torch.Tensor) -> None:
            flat = x.detach().reshape(-1)
            if flat.numel() > _SAMPLE_PER_POINT:
                idx = torch.randint(0, flat.numel(), (_SAMPLE_PER_POINT,), generator=gen)
                sample = flat[idx.to(flat.device)]
            else:
                sample = flat.clone()
            self._samples[key] = sample
            self._amax[key] = float(flat.abs().max())

        shadow = copy.deepcopy(model).eval()
        float_lq = LayerQuant(FLOAT_BITS, FLOAT_BITS, 0.0)
        hooks = []
        inputs = [f"{n}:a" for n in layer_names(model) if not is_matmul_layer(n)]
        inputs += [f"{n}:in" for n, _ in nonlinear_modules(model)]
        for key in inputs:
            mod = shadow.get_submodule(key.rsplit(":", 1)[0])
            hooks.append(mod.register_forward_pre_hook(lambda _m, args, key=key: observe(key, args[0])))
        for i, block in enumerate(vit_blocks(shadow)):
            block.attn = QuantAttention(
                child_module(block, "attn"), f"blocks.{i}.attn", float_lq, float_lq, {}, "uniform", observe
            )
        with torch.no_grad():
            shadow(calib)
        for h in hooks:
            h.remove()

    def points(self) -> list[str]:
        return sorted(self._samples)

    def act_scale(self, point: str, bits: int, kind: str, method: str) -> float:
        key = (point, bits, kind, method)
        if key not in self._scale_memo:
            q = QUANTIZERS[kind]
            sample, amax = self._samples[point], self._amax[point]
            # log2 post-softmax codes cover [0, 1]: the scale is 1 (no calibration needed)
            s = 1.0 if kind == "log2" else tensor_scale(sample, amax, bits, q, method)
            self._scale_memo[key] = s
        return self._scale_memo[key]

    def nonlinear_scale(self, point: str) -> float:
        """The power-of-two input scale of an integer non-linear operator (its range covered)."""
        return 2.0 ** -frac_bits_for(self._amax[point], NONLINEAR_BITS)

    def weight(self, name: str, lq: LayerQuant, method: str) -> QWeight:
        key = (name, lq.weight_bits, lq.pot_ratio, method)
        if key not in self._weight_memo:
            w = tensor_attr(self.model.get_submodule(name), "weight")
            groups = _weight_groups(self.model, name)
            bits = lq.weight_bits

            def scales(kind: str) -> torch.Tensor:  # shared by every PoT ratio of these bits
                skey = (name, bits, kind, method)
                if skey not in self._channel_scale_memo:
                    self._channel_scale_memo[skey] = channel_scales(w, bits, QUANTIZERS[kind], method)
                return self._channel_scale_memo[skey]

            self._weight_memo[key] = quantize_weight(w, bits, lq.pot_ratio, groups, method, scales)
        return self._weight_memo[key]


# ----------------------------------------------------------------------------- build


def _act_points(name: str, lq: LayerQuant, softmax: str) -> Iterator[tuple[str, int, str]]:
    """(point, bits, quantizer) of the activations a layer quantizes."""
    if name.endswith(".qk"):
        yield f"{name}:a", lq.act_bits, "fixed"
        yield f"{name}:b", lq.weight_bits, "fixed"
    elif name.endswith(".sv"):
        yield f"{name}:a", lq.act_bits, "log2" if softmax == "log2" else "unsigned"
        yield f"{name}:b", lq.weight_bits, "fixed"
    else:
        yield f"{name}:a", lq.act_bits, "fixed"


def _build(
    model: nn.Module,
    config: QuantConfig,
    qweights: Mapping[str, QWeight],
    act_scales: Mapping[str, float],
) -> nn.Module:
    qmodel = copy.deepcopy(model).eval()
    names = layer_names(model)
    for name in names:
        if is_matmul_layer(name):
            continue
        lq = config.for_layer(name)
        if lq.is_float:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = qmodel.get_submodule(parent_name) if parent_name else qmodel
        mod = getattr(parent, attr)
        qw = qweights.get(name)
        scale = act_scales.get(f"{name}:a")
        wrap = QuantConv2d if isinstance(mod, nn.Conv2d) else QuantLinear
        setattr(parent, attr, wrap(mod, qw, lq.act_bits, scale))
    integer = config.nonlinear == "int"
    if integer:
        for name, kind in nonlinear_modules(model):
            parent_name, _, attr = name.rpartition(".")
            parent = qmodel.get_submodule(parent_name) if parent_name else qmodel
            mod = getattr(parent, attr)
            affine = mod if isinstance(mod, nn.LayerNorm) else None
            approximate = str(getattr(mod, "approximate", "none"))
            layer = IntNonlinear(kind, act_scales[f"{name}:in"], affine, approximate, config.kernels[kind])
            setattr(parent, attr, layer)
    for i, block in enumerate(vit_blocks(qmodel)):
        p = f"blocks.{i}.attn"
        qk, sv = config.for_layer(f"{p}.qk"), config.for_layer(f"{p}.sv")
        if qk.is_float and sv.is_float and not integer:
            continue
        keys = [f"{p}.{m}:{o}" for m in ("qk", "sv") for o in ("a", "b")]
        soft = (
            IntNonlinear("softmax", act_scales[softmax_point(p)], variant=config.kernels["softmax"])
            if integer
            else None
        )
        block.attn = QuantAttention(
            child_module(block, "attn"),
            p,
            qk,
            sv,
            {k: act_scales.get(k) for k in keys},
            config.softmax,
            int_softmax=soft,
        )
    qmodel.quant_config = config  # type: ignore[assignment]
    qmodel.quant_act_scales = dict(act_scales)  # type: ignore[assignment]
    return qmodel


def nonlinear_points(model: nn.Module) -> list[str]:
    """The input points of the integer non-linear operators: every softmax, LayerNorm and GELU."""
    points = [softmax_point(f"blocks.{i}.attn") for i in range(len(vit_blocks(model)))]
    return points + [f"{name}:in" for name, _ in nonlinear_modules(model)]


def quantize_model(model: nn.Module, config: QuantConfig, calib: torch.Tensor | Calibration) -> nn.Module:
    """A fake-quantized deep copy of a timm ViT for a per-layer config.

    ``calib`` is a calibration image batch, or a :class:`Calibration` built from this model (reuse
    it across many configs: calibration and weight quantization are then memoised).
    """
    names = _check_names(model, config)
    if isinstance(calib, Calibration):
        if calib.model is not model:
            raise ValueError("the Calibration was built from another model")
        cal = calib
    else:
        cal = Calibration(model, calib)
    qweights: dict[str, QWeight] = {}
    act_scales: dict[str, float] = {}
    for name in names:
        lq = config.for_layer(name)
        if is_matmul_layer(name) and lq.pot_ratio != 0:
            raise UserError(f"layers.{name}: pot_ratio must be 0 for qk/sv")
        if not is_matmul_layer(name) and lq.weight_bits < FLOAT_BITS:
            qweights[name] = cal.weight(name, lq, config.weight_calibration)
        for point, bits, kind in _act_points(name, lq, config.softmax):
            if bits < FLOAT_BITS:
                act_scales[point] = cal.act_scale(point, bits, kind, config.act_calibration)
    if config.nonlinear == "int":
        for point in nonlinear_points(model):
            act_scales[point] = cal.nonlinear_scale(point)
    return _build(model, config, qweights, act_scales)


# ----------------------------------------------------------------------------- export / load


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` when every tensor it holds is on the CPU, else a CPU copy (parameters, buffers
    and the integer weights of its quantized modules) for what runs on the CPU only: exports,
    QONNX, testbench operands."""
    tensors: list[torch.Tensor] = [*model.parameters(), *model.buffers()]
    for m in model.modules():
        qw = getattr(m, "qweight", None)
        if isinstance(qw, QWeight):
            tensors += [qw.codes, qw.scale, qw.pot_mask]
    if all(t.device.type == "cpu" for t in tensors):
        return model
    out = copy.deepcopy(model).cpu()
    for m in out.modules():
        qw = getattr(m, "qweight", None)
        if isinstance(qw, QWeight):
            setattr(m, "qweight", QWeight(qw.bits, qw.codes.cpu(), qw.scale.cpu(), qw.pot_mask.cpu()))  # noqa: B010
    return out


def export_int_model(qmodel: nn.Module, path: str | Path) -> Path:
    """Save integer weights + scales (+ the float rest) of a model from :func:`quantize_model`."""
    config = getattr(qmodel, "quant_config", None)
    if not isinstance(config, QuantConfig):
        raise UserError("export_int_model: not a model returned by quantize_model")
    qmodel = on_cpu(qmodel)
    weights: dict[str, dict[str, Any]] = {}
    for name, mod in qmodel.named_modules():
        if isinstance(mod, QuantLinear | QuantConv2d) and mod.qweight is not None:
            qw = mod.qweight
            weights[name] = {
                "bits": qw.bits,
                "codes": qw.codes,
                "scale": qw.scale,
                "pot_mask": qw.pot_mask,
            }
    skip = {f"{n}.weight" for n in weights}
    float_state = {k: v for k, v in qmodel.state_dict().items() if k not in skip}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": EXPORT_FORMAT,
            "config": config.to_dict(),
            "weights": weights,
            "act_scales": dict(getattr(qmodel, "quant_act_scales", {})),
            "float_state": float_state,
        },
        out,
    )
    return out


def load_int_model(
    path: str | Path, model_factory_or_model: nn.Module | Callable[[], nn.Module]
) -> nn.Module:
    """Rebuild the fake-quantized model saved by :func:`export_int_model`.

    ``model_factory_or_model``: an instance of the same architecture (its weights are replaced) or
    a zero-argument factory returning one.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"int model not found: {p}")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{p}: not a torch file ({exc.__class__.__name__})") from exc
    if not isinstance(raw, dict) or raw.get("format") != EXPORT_FORMAT:
        raise UserError(f"{p}: not a {EXPORT_FORMAT} export")
    model = (
        model_factory_or_model if isinstance(model_factory_or_model, nn.Module) else model_factory_or_model()
    )
    model = copy.deepcopy(model)
    config = QuantConfig.from_dict(raw["config"])
    qweights = {
        name: QWeight(int(d["bits"]), d["codes"], d["scale"], d["pot_mask"])
        for name, d in raw["weights"].items()
    }
    result = model.load_state_dict(raw["float_state"], strict=False)
    missing = set(result.missing_keys) - {f"{n}.weight" for n in qweights}
    if missing or result.unexpected_keys:
        bad = sorted(missing) or sorted(result.unexpected_keys)
        raise UserError(f"{p}: does not fit the given model (key {bad[0]!r})")
    _check_names(model, config)
    return _build(model, config, qweights, {str(k): float(v) for k, v in raw["act_scales"].items()})
