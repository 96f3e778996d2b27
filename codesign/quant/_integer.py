"""Integer-only inference of a quantized ViT: the program the accelerator can be bit-exact against.

:func:`integer_model` turns a model from :func:`~codesign.quant.quantize_model` (every layer
quantized, ``nonlinear: int``) into an :class:`IntegerViT` whose forward pass computes on int64
codes only; :func:`quantize_integer_model` quantizes and converts in one call. Float appears at
the two boundaries alone: the input image is quantized to the patch embedding's codes (exactly as
the fake-quantized model does), and the head's accumulators times their scales are the logits.
Scales are build-time constants: every rescale between layers is a dyadic multiplier ``M·2^−s``
(:mod:`codesign.quant._dyadic`: 31-bit M, rounding half up, saturating).

Formats and steps (``s_a`` a layer's input scale, ``s_c`` its weight's per-channel unit):

* **weights** (:class:`IntWeight`): fixed-point channels hold their code q (unit s_c); a PoT
  channel's code ±(e − e_min + 1) becomes ±2^(e − e_min) (unit s_c·2^e_min, the hardware's
  shift of the activation). **Biases** are integers in the accumulator's unit s_a·s_c
  (``round(b / (s_a·s_c))``). A GEMM accumulates exactly in int64; its worst case over any input
  codes must stay below 2^31 (the rescale's input), checked when built.
* **GEMM → next quantization point**: the accumulator is rescaled per output channel by
  s_a·s_c / s_out (Q, K, V of ``qkv`` to their ``qk``/``sv`` points; ``fc1`` to GELU's input;
  ``head`` to float logits) or per tensor (Q·Kᵀ·head_dim^−½ to the softmax's input, softmax·V
  to ``proj``'s input).
* **residual stream**: :data:`RESIDUAL_BITS`-bit codes at the input scale of the LayerNorm that
  reads it next (a power of two, calibrated as for ``nonlinear: int``); a residual add rescales
  the stream (S_old/S_new, a shift) and the branch's accumulator (per channel) to S_new and adds
  the two. The LayerNorm clamps its input to 16 bits as the fake-quantized model does.
* **patch embedding, class token, position embedding**: the patch accumulators are rescaled to
  the first LayerNorm's scale with the position embedding as an offset before the shift (one
  rounding); the class token plus its position embedding is a constant code.
* **non-linear operators**: the integer kernels of :mod:`hwmodel.arch.intops` (the variant the
  config's ``kernels`` names) on the same 16-bit codes; LayerNorm's γ, β are the per-channel
  multiplier and offset of the rescale to the next GEMM's input; softmax probabilities
  (16 fraction bits) are rescaled to ``sv``'s unsigned codes, or for ``softmax: log2`` rounded
  in the log domain by integer comparisons (u² against 2^(2n+1)) to 2^n.

The fake-quantized model computes the same quantities in float32 and rounds once per point; this
program rounds half up where that one rounds half to even, keeps the residual stream in codes,
and rounds a residual add's two operands separately. ``python -m codesign.integer_check``
measures the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from codesign.errors import UserError
from codesign.nn_attrs import child_module
from codesign.quant._config import FLOAT_BITS, QuantConfig
from codesign.quant._dyadic import INPUT_BITS, Dyadic
from codesign.quant._model import (
    Calibration,
    IntNonlinear,
    QuantAttention,
    QuantConv2d,
    QuantLinear,
    QWeight,
    on_cpu,
    quantize_model,
    softmax_point,
)
from codesign.quant._quantizers import fixed_codes, log2_min_exponent, pot_min_exponent
from hwmodel.arch.intops import NONLINEAR_BITS, IntOp, IntSpec
from hwmodel.target.vit import layer_names, vit_blocks

#: Width of the residual stream's codes (16-bit LayerNorm codes with 8 bits of headroom).
RESIDUAL_BITS = 24
#: Widest PoT code whose weight 2^(e − e_min) fits an int32 (e_min = −(2^(b−1) − 2)).
MAX_INTEGER_POT_BITS = 6


def _signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of int64 codes, exactly: in int32 (about 10× faster on the CPU) when the
    operands' largest magnitudes bound every sum below 2^31, else in int64."""
    depth = int(a.shape[-1])
    bound = int(a.abs().max()) * int(b.abs().max()) * depth if a.numel() and b.numel() else 0
    if bound < 1 << 31:
        return torch.matmul(a.to(torch.int32), b.to(torch.int32)).to(torch.int64)
    return torch.matmul(a, b)


def input_codes(images: torch.Tensor, scale: float, bits: int) -> torch.Tensor:
    """The input boundary: float images → ``bits``-bit codes at ``scale`` (int64, on the CPU;
    the scale in the images' dtype, as the fake-quantized model rounds)."""
    return fixed_codes(images.detach().cpu(), torch.tensor(scale, dtype=images.dtype), bits).to(torch.int64)


def patch_rows(codes: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """Input codes ``[B, C, H, W]`` → the patch embedding's rows ``[B, patches, C·ph·pw]``
    (patches row-major, each channel-major as the convolution's weight is laid out)."""
    b, c, h, w = codes.shape
    ph, pw = patch
    if h % ph or w % pw:
        raise UserError(f"integer inference: image {h}×{w} is not a whole number of {ph}×{pw} patches")
    rows = codes.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5)
    return rows.reshape(b, (h // ph) * (w // pw), c * ph * pw)


@dataclass(frozen=True)
class Rescale:
    """A dyadic rescale to ``bits``-bit codes (signed, or unsigned ``[0, 2^bits − 1]``), with an
    optional integer offset before the shift (a bias or LayerNorm β in output units)."""

    dyadic: Dyadic
    lo: int
    hi: int
    offset: torch.Tensor | None = None

    @classmethod
    def to_codes(
        cls, scales: torch.Tensor | float, bits: int, signed: bool = True, add: torch.Tensor | None = None
    ) -> Rescale:
        """Multiply by ``scales`` (one, or one per channel of the last axis), add ``add`` (output
        units; folded into the offset), round and saturate to ``bits``-bit codes."""
        d = Dyadic.from_scales(scales)
        lo, hi = _signed_range(bits) if signed else (0, (1 << bits) - 1)
        return cls(d, lo, hi, None if add is None else d.offset_for(add))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.dyadic.apply(x, self.lo, self.hi, self.offset)


@dataclass(frozen=True)
class IntWeight:
    """Integer weight ``values [O, K]`` (int64; fixed-point codes, or ±2^(e − e_min) on PoT
    channels), the real value of one unit per output channel ``unit [O]`` (float64), which
    channels are PoT ``pot [O]`` (bool) and the codes' width ``bits``."""

    values: torch.Tensor
    unit: torch.Tensor
    pot: torch.Tensor
    bits: int

    @classmethod
    def from_qweight(cls, qw: QWeight, where: str) -> IntWeight:
        codes = qw.codes.long().reshape(qw.codes.shape[0], -1)
        scale = qw.scale.double().reshape(-1)
        if not bool(qw.pot_mask.any()):
            return cls(codes, scale, torch.zeros(codes.shape[0], dtype=torch.bool), qw.bits)
        if qw.bits > MAX_INTEGER_POT_BITS:
            raise UserError(
                f"{where}: integer inference takes PoT codes of ≤ {MAX_INTEGER_POT_BITS} bits "
                f"(2^(e − e_min) in 32 bits), got {qw.bits}"
            )
        e_min = pot_min_exponent(qw.bits)
        mag = torch.where(codes != 0, 1 << (codes.abs() - 1).clamp(min=0), 0)
        pot = codes.sign() * mag
        mask = qw.pot_mask.reshape(-1, 1)
        unit = torch.where(qw.pot_mask, scale * 2.0**e_min, scale)
        return cls(torch.where(mask, pot, codes), unit, qw.pot_mask.reshape(-1).clone(), qw.bits)

    def dequantize(self) -> torch.Tensor:
        """The real weight ``[O, K]`` (float64; equals :meth:`QWeight.dequantize` up to rounding)."""
        return self.values.double() * self.unit[:, None]


class IntegerLinear(nn.Module):
    """``acc = x·Wᵀ + b`` on int64 codes: ``x [..., K]`` at ``in_scale`` (``in_bits`` signed), the
    integer weight, the bias in the accumulator's unit ``acc_unit = in_scale·unit [O]``."""

    def __init__(
        self, name: str, weight: IntWeight, bias: torch.Tensor | None, in_scale: float, in_bits: int
    ) -> None:
        super().__init__()
        self.name = name
        self.in_scale, self.in_bits = in_scale, in_bits
        self.weight_t = weight.values.t().contiguous()
        self.pot, self.weight_bits = weight.pot, weight.bits
        self.acc_unit = weight.unit * in_scale
        b = torch.zeros(weight.values.shape[0], dtype=torch.float64) if bias is None else bias.double()
        self.bias = torch.round(b / self.acc_unit).to(torch.int64)
        worst = (1 << (in_bits - 1)) * weight.values.abs().sum(1) + self.bias.abs()
        if float(worst.max()) >= 2.0**INPUT_BITS:
            bits = int(float(worst.max())).bit_length() + 1
            raise UserError(
                f"{name}: integer inference needs accumulators within {INPUT_BITS + 1} bits, "
                f"this layer's can reach {bits} (narrower weights, activations or PoT codes)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int_matmul(x, self.weight_t) + self.bias


class IntegerLayerNorm(nn.Module):
    """LayerNorm's integer kernel on 16-bit codes, then γ, β and the next GEMM's quantization as
    one per-channel rescale (multiplier 2^−out_frac·γ / s_out, offset β / s_out)."""

    def __init__(self, fq: IntNonlinear, out_scale: float, out_bits: int) -> None:
        super().__init__()
        self.op, self.spec = fq.op, fq.spec
        width = int(fq.weight.shape[-1]) if fq.weight is not None else 1
        gamma = torch.ones(width, dtype=torch.float64) if fq.weight is None else fq.weight.double()
        beta = None if fq.bias is None else fq.bias.double() / out_scale
        self.out = Rescale.to_codes(gamma * 2.0**-self.spec.out_frac / out_scale, out_bits, add=beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(_kernel(self.op, self.spec, x))


def _kernel(op: IntOp, spec: IntSpec, codes: torch.Tensor) -> torch.Tensor:
    """An :mod:`hwmodel.arch.intops` kernel on int64 codes clamped to its 16-bit input."""
    lo, hi = _signed_range(NONLINEAR_BITS)
    q = codes.clamp(lo, hi).numpy()
    return torch.from_numpy(np.ascontiguousarray(op(q, spec))).to(torch.int64)


def log2_codes(p: torch.Tensor, frac: int, bits: int) -> torch.Tensor:
    """The ``log2`` quantizer of ``softmax: log2`` on probability codes ``p`` (value p·2^−frac,
    p ≥ 0): 2^(e + frac) with e = round(log2(p·2^−frac)) clamped to [e_min, 0] (log-domain
    rounding: p ≥ 2^(n + ½) ⇔ p² ≥ 2^(2n + 1), integer comparisons), 0 below 2^(e_min − 1)."""
    e_min = log2_min_exponent(bits)
    sq = p * p
    n = torch.zeros_like(p)
    for j in range(frac + 1):  # n = #{j ≥ 0 : p² ≥ 2^(2j+1)}
        n = n + (sq >= (1 << (2 * j + 1))).long()
    e = (n - frac).clamp(e_min, 0)
    zero_below = e_min - 1 + frac  # p < 2^(e_min − 1 + frac)
    small = sq < (1 << (2 * zero_below)) if zero_below >= 0 else torch.zeros_like(p, dtype=torch.bool)
    lo_shift = max(e_min + frac, 0)
    vals = 1 << (e + frac).clamp(min=lo_shift)
    return torch.where((p == 0) | small, 0, vals)


def check_integer_config(config: QuantConfig, layers: Sequence[str] | None = None) -> None:
    """Refuse, in one line, a config the integer program cannot run: a float layer or
    activation, PoT codes wider than :data:`MAX_INTEGER_POT_BITS`, float non-linear operators
    (the per-layer accumulator widths are checked when the model is built). ``layers``: the
    model's layer names (:func:`~hwmodel.target.vit.layer_names`), so that a default no layer
    uses is not held against the config (a searched design names every layer and leaves the
    default float); without them the default and every override are checked."""
    if config.nonlinear != "int":
        raise UserError("integer inference needs nonlinear: int (the integer softmax, LayerNorm, GELU)")
    if layers is None:
        points = [("default", config.default), *((f"layers.{k}", v) for k, v in config.layers.items())]
    else:
        points = [(f"layers.{n}" if n in config.layers else "default", config.for_layer(n)) for n in layers]
    for where, lq in points:
        if lq.weight_bits >= FLOAT_BITS or lq.act_bits >= FLOAT_BITS:
            raise UserError(f"{where}: integer inference needs every layer quantized, got {lq.to_string()}")
        if lq.pot_ratio > 0 and lq.weight_bits > MAX_INTEGER_POT_BITS:
            raise UserError(
                f"{where}: integer inference takes PoT codes of ≤ {MAX_INTEGER_POT_BITS} bits "
                f"(2^(e − e_min) in 32 bits), got {lq.to_string()}"
            )


def _check_vit(model: nn.Module) -> None:
    """The standard timm ViT the integer program covers (one line naming what differs)."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise UserError(f"integer inference supports the standard timm ViT only: {what}")

    need(getattr(model, "cls_token", None) is not None, "a class token is needed")
    need(getattr(model, "reg_token", None) is None, "register tokens are not supported")
    need(getattr(model, "pos_embed", None) is not None, "a position embedding is needed")
    need(not bool(getattr(model, "no_embed_class", False)), "no_embed_class is not supported")
    need(not bool(getattr(model, "dynamic_img_size", False)), "dynamic_img_size is not supported")
    need(getattr(model, "global_pool", "") == "token", "global_pool must be 'token'")
    need(getattr(model, "attn_pool", None) is None, "attention pooling is not supported")
    for path in ("norm_pre", "fc_norm", "patch_embed.norm"):
        need(isinstance(model.get_submodule(path), nn.Identity), f"{path} must be Identity")
    for i, blk in enumerate(vit_blocks(model)):
        for sub in ("ls1", "ls2", "drop_path1", "drop_path2", "mlp.norm"):
            mod = blk.get_submodule(sub)
            need(isinstance(mod, nn.Identity), f"blocks.{i}.{sub} must be Identity")


@dataclass(frozen=True)
class _Points:
    """The fake-quantized model's scales and precisions, read by name (one-line errors)."""

    config: QuantConfig
    scales: dict[str, float]

    def scale(self, point: str) -> float:
        s = self.scales.get(point)
        if s is None:
            raise UserError(f"integer inference: no scale for {point!r} (quantize every layer)")
        return float(s)


def _linear(name: str, mod: nn.Module) -> IntegerLinear:
    if not isinstance(mod, QuantLinear | QuantConv2d) or mod.qweight is None or mod.act_scale is None:
        raise UserError(f"{name}: integer inference needs the layer's weight and input quantized")
    if mod.act_bits >= FLOAT_BITS:
        raise UserError(f"{name}: integer inference needs a quantized input activation")
    weight = IntWeight.from_qweight(mod.qweight, name)
    return IntegerLinear(name, weight, mod.bias, float(mod.act_scale), mod.act_bits)


def _nonlinear(name: str, mod: nn.Module) -> IntNonlinear:
    if not isinstance(mod, IntNonlinear):
        raise UserError(f"{name}: integer inference needs the integer kernel (nonlinear: int)")
    return mod


class IntegerBlock(nn.Module):
    """One transformer block on residual codes at ``in_scale`` → codes at ``out_scale``."""

    def __init__(self, block: nn.Module, i: int, in_scale: float, out_scale: float, pts: _Points) -> None:
        super().__init__()
        p = f"blocks.{i}"
        attn = child_module(block, "attn")
        if not isinstance(attn, QuantAttention):
            raise UserError(f"{p}.attn: integer inference needs the quantized attention")
        mlp = child_module(block, "mlp")
        self.heads, self.head_dim = attn.num_heads, attn.head_dim
        qk, sv = attn.qk, attn.sv
        self.qkv = _linear(f"{p}.attn.qkv", attn.qkv)
        self.proj = _linear(f"{p}.attn.proj", attn.proj)
        self.fc1 = _linear(f"{p}.mlp.fc1", child_module(mlp, "fc1"))
        self.fc2 = _linear(f"{p}.mlp.fc2", child_module(mlp, "fc2"))
        n1, n2 = (
            _nonlinear(f"{p}.norm1", child_module(block, "norm1")),
            _nonlinear(f"{p}.norm2", child_module(block, "norm2")),
        )
        mid_scale = pts.scale(f"{p}.norm2:in")
        self.norm1 = IntegerLayerNorm(n1, self.qkv.in_scale, self.qkv.in_bits)
        self.norm2 = IntegerLayerNorm(n2, self.fc1.in_scale, self.fc1.in_bits)
        # Q, K, V: per output channel of qkv to their points
        s_q, s_k = pts.scale(f"{p}.attn.qk:a"), pts.scale(f"{p}.attn.qk:b")
        s_p, s_v = pts.scale(f"{p}.attn.sv:a"), pts.scale(f"{p}.attn.sv:b")
        d = self.heads * self.head_dim
        unit = self.qkv.acc_unit
        self.to_q = Rescale.to_codes(unit[:d] / s_q, qk.act_bits)
        self.to_k = Rescale.to_codes(unit[d : 2 * d] / s_k, qk.weight_bits)
        self.to_v = Rescale.to_codes(unit[2 * d :] / s_v, sv.weight_bits)
        # softmax: Q·Kᵀ·scale to its 16-bit input, probabilities to sv's codes
        soft = attn.int_softmax
        if soft is None:
            raise UserError(f"{p}.attn: integer inference needs the integer softmax (nonlinear: int)")
        self.soft_op, self.soft_spec = soft.op, soft.spec
        s_in = pts.scale(softmax_point(f"{p}.attn"))
        self.to_softmax = Rescale.to_codes(s_q * s_k * float(attn.scale) / s_in, NONLINEAR_BITS)
        self.log2 = attn.softmax_kind == "log2"
        self.p_bits = sv.act_bits
        self.to_p = Rescale.to_codes(2.0**-self.soft_spec.out_frac / s_p, sv.act_bits, signed=False)
        p_unit = 2.0**-self.soft_spec.out_frac if self.log2 else s_p
        self.to_proj = Rescale.to_codes(p_unit * s_v / self.proj.in_scale, self.proj.in_bits)
        # residual adds: the stream and the branch to the next LayerNorm's scale
        self.skip1 = Rescale.to_codes(in_scale / mid_scale, RESIDUAL_BITS)
        self.add1 = Rescale.to_codes(self.proj.acc_unit / mid_scale, RESIDUAL_BITS)
        self.skip2 = Rescale.to_codes(mid_scale / out_scale, RESIDUAL_BITS)
        self.add2 = Rescale.to_codes(self.fc2.acc_unit / out_scale, RESIDUAL_BITS)
        # GELU: fc1 to its 16-bit input, its output to fc2's codes
        gelu = _nonlinear(f"{p}.mlp.act", child_module(mlp, "act"))
        self.gelu_op, self.gelu_spec = gelu.op, gelu.spec
        self.to_gelu = Rescale.to_codes(self.fc1.acc_unit / gelu.in_scale, NONLINEAR_BITS)
        self.from_gelu = Rescale.to_codes(2.0**-self.gelu_spec.out_frac / self.fc2.in_scale, self.fc2.in_bits)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        d = self.heads * self.head_dim
        acc = self.qkv(self.norm1(x))
        heads = (b, n, self.heads, self.head_dim)
        q = self.to_q(acc[..., :d]).reshape(heads).transpose(1, 2)
        k = self.to_k(acc[..., d : 2 * d]).reshape(heads).transpose(1, 2)
        v = self.to_v(acc[..., 2 * d :]).reshape(heads).transpose(1, 2)
        logits = self.to_softmax(int_matmul(q, k.transpose(-2, -1)))
        probs = _kernel(self.soft_op, self.soft_spec, logits)
        pc = log2_codes(probs, self.soft_spec.out_frac, self.p_bits) if self.log2 else self.to_p(probs)
        out = self.to_proj(int_matmul(pc, v).transpose(1, 2).reshape(b, n, d))
        result: torch.Tensor = self.proj(out)
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = _signed_range(RESIDUAL_BITS)
        x = (self.skip1(x) + self.add1(self._attention(x))).clamp(lo, hi)
        h = self.fc1(self.norm2(x))
        g = self.from_gelu(_kernel(self.gelu_op, self.gelu_spec, self.to_gelu(h)))
        return (self.skip2(x) + self.add2(self.fc2(g))).clamp(lo, hi)


class IntegerViT(nn.Module):
    """A timm ViT as an integer program (module docstring): ``forward(images)`` quantizes the
    float images, runs on int64 codes on the CPU and returns float logits."""

    def __init__(self, qmodel: nn.Module) -> None:
        super().__init__()
        config = getattr(qmodel, "quant_config", None)
        if not isinstance(config, QuantConfig):
            raise UserError("integer_model: not a model returned by quantize_model")
        check_integer_config(config, layer_names(qmodel))
        qmodel = on_cpu(qmodel)
        _check_vit(qmodel)
        self.config = config
        pts = _Points(config, dict(getattr(qmodel, "quant_act_scales", {})))
        conv = qmodel.get_submodule("patch_embed.proj")
        if not isinstance(conv, QuantConv2d):
            raise UserError("patch_embed.proj: integer inference needs the layer quantized")
        if tuple(conv.stride) != tuple(conv.kernel_size) or any(conv.padding) or conv.groups != 1:
            raise UserError("patch_embed.proj: integer inference needs stride = kernel, no padding, groups 1")
        if any(d != 1 for d in conv.dilation):
            raise UserError("patch_embed.proj: integer inference needs dilation 1")
        self.patch = int(conv.kernel_size[0]), int(conv.kernel_size[1])
        self.patch_embed = _linear("patch_embed.proj", conv)
        blocks = vit_blocks(qmodel)
        norms = [f"blocks.{i}.norm1" for i in range(len(blocks))] + ["norm"]
        res = [pts.scale(f"{n}:in") for n in norms]
        # class token + position embedding: constants at the first LayerNorm's scale
        pos = qmodel.get_parameter("pos_embed").detach().double()[0]
        cls = qmodel.get_parameter("cls_token").detach().double()[0, 0]
        lo, hi = _signed_range(RESIDUAL_BITS)
        self.cls_codes = torch.round((cls + pos[0]) / res[0]).clamp(lo, hi).to(torch.int64)
        self.embed = Rescale.to_codes(self.patch_embed.acc_unit / res[0], RESIDUAL_BITS, add=pos[1:] / res[0])
        self.blocks = nn.ModuleList(
            IntegerBlock(blk, i, res[i], res[i + 1], pts) for i, blk in enumerate(blocks)
        )
        self.head = _linear("head", qmodel.get_submodule("head"))
        self.norm = IntegerLayerNorm(
            _nonlinear("norm", child_module(qmodel, "norm")), self.head.in_scale, self.head.in_bits
        )

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """The boundary: float images → the patch embedding's input codes (int64)."""
        return input_codes(images, self.patch_embed.in_scale, self.patch_embed.in_bits)

    def patches(self, codes: torch.Tensor) -> torch.Tensor:
        """Input codes ``[B, C, H, W]`` → the patch embedding's rows (:func:`patch_rows`)."""
        return patch_rows(codes, self.patch)

    def features(self, codes: torch.Tensor) -> torch.Tensor:
        """Input codes ``[B, C, H, W]`` → the class token's residual codes after the last block."""
        b = codes.shape[0]
        tokens = self.embed(self.patch_embed(self.patches(codes)))
        x = torch.cat([self.cls_codes.expand(b, 1, -1), tokens], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return x[:, 0]

    def accumulators(self, images: torch.Tensor) -> torch.Tensor:
        """The head's int64 accumulators ``[B, classes]`` (the last integer result)."""
        acc: torch.Tensor = self.head(self.norm(self.features(self.codes(images))))
        return acc

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Float logits: the head's accumulators times their unit (the output boundary)."""
        acc = self.accumulators(images)
        return (acc.double() * self.head.acc_unit).to(device=images.device, dtype=torch.float32)


def integer_model(qmodel: nn.Module) -> IntegerViT:
    """The integer program of a model from :func:`quantize_model` or :func:`load_int_model`
    (every layer quantized, ``nonlinear: int``; one-line :class:`UserError` otherwise)."""
    return IntegerViT(qmodel)


def quantize_integer_model(
    model: nn.Module, config: QuantConfig, calib: torch.Tensor | Calibration
) -> IntegerViT:
    """:func:`quantize_model` then :func:`integer_model`: the same calibration, weights and
    scales as the fake-quantized model of ``config``, run integer-only."""
    check_integer_config(config, layer_names(model))  # before the quantization's work
    return integer_model(quantize_model(model, config, calib))
