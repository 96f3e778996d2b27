"""Integer kernels of the ViT's non-linear operators (softmax, LayerNorm, GELU) and their registry.

Each kernel is a pure, deterministic, vectorised function of integer codes (``int64`` numpy
arrays; the row-wise ones reduce over the last axis) and an :class:`IntSpec`: the input value is
``q·2^−in_frac`` (``in_bits`` signed), the output ``y·2^−out_frac`` (``out_bits``, saturated).
Every shift is an arithmetic (floor) shift and every division a floor division, so the RTL of
:mod:`hwmodel.rtl.nonlinear` reproduces them bit for bit. ``codesign.quant`` re-exports this
module (the quantized model uses the kernels); it lives in ``hwmodel`` because the hardware model
and its RTL check need it and ``hwmodel`` imports nothing of ``codesign``.

softmax (shift-based exp, one reciprocal per row; ``out_bits`` unsigned, ``out_frac = out_bits``)::

    d_i = q_i − max_j q_j                                  (≤ 0)
    u_i = ⌊−d_i·L2E / 2^14⌋,  L2E = round(log2(e)·2^14)    (−x·log2 e, in_frac fraction bits)
    z_i = u_i >> in_frac,  f_i = u_i mod 2^in_frac          (integer and fraction of the exponent)
    p_i = 2^15 − ⌊f_i·(A·2^F − B·f_i) / 2^(2F+15−15)⌋      (2^−r ≈ 1 − a·r + b·r², r = f/2^F,
          a = 0.66988, b = a − ½; A, B = round(·2^15); F = in_frac)
    e_i = p_i >> min(z_i, 16)                               (e^{d_i·2^−F} in 15 fraction bits)
    R   = ⌊2^K / Σ_j e_j⌋,  K = 15 + out_bits + 12         (one reciprocal per row, rows ≤ 4096)
    y_i = min(⌊e_i·R / 2^(K − out_bits)⌋, 2^out_bits − 1)

layernorm (integer mean/variance, bitwise integer square root, one reciprocal per row; N = row
length; the affine γ, β is not part of the kernel)::

    S1 = Σ q_j,  S2 = Σ q_j²,  V = N·S2 − S1²               (= N²·variance, exact)
    D  = max(⌊√V⌋, 1)                                       (= N·σ)
    R  = ⌊2^K / D⌋,  K = in_bits + 12 + out_frac + 2
    y_i = clamp(⌊(N·q_i − S1)·R / 2^(K − out_frac)⌋)        ((x − μ)/σ in out_frac fraction bits)

gelu (I-BERT i-GELU: erf(u) ≈ sign(u)·[a(min(|u|, −b) + b)² + 1], a = −0.2888, b = −1.769,
u = x/√2; F = in_frac)::

    C  = round(1.769·√2·2^F),  v = min(|q|, C) − C          (≤ 0)
    E  = 2^15 − ⌊A·v² / 2^(2F+15−15)⌋,  A = round(0.1444·2^15)   (|erf(x/√2)| in 15 bits)
    y  = clamp(⌊q·(2^15 + sign(q)·E) / 2^(16 + F − out_frac)⌋)   (x·(1 + erf(x/√2))/2)

Shift-and-add variants (:data:`KERNELS` ``[kind]["shift"]``; I-ViT, Li & Gu, ICCV 2023: Shiftmax,
ShiftGELU, I-LayerNorm): no product of two variables, no multiplication by a constant other than
shifts and adds, so their lanes need no DSP slice. F = in_frac, O = out_frac.

shift exp (``m ≥ 0``: e^{−m·2^−F} in 15 fraction bits)::

    u = m + (m >> 1) − (m >> 4)                             (m·log2 e, log2 e ≈ 1.4375)
    z = u >> F,  f = u mod 2^F
    p = 2^15 − ⌊f·2^15 / 2^(F+1)⌋                           (2^−r ≈ 1 − r/2, r = f/2^F)
    e = p >> min(z, 16)

softmax "shift" (Shiftmax; normalised by a shift-subtract division per element)::

    e_i = exp(max_j q_j − q_i),  S = Σ_j e_j               (S ≥ 2^15)
    y_i = min(⌊e_i·2^O / S⌋, 2^out_bits − 1)

gelu "shift" (ShiftGELU: x·σ(1.702x), σ(t) = 1/(1 + e^−t) for t ≥ 0, σ(−t) = 1 − σ(t))::

    a = |q|,  T = a + (a >> 1) + (a >> 3) + (a >> 4)        (1.702·|x| ≈ 1.6875·|x|)
    w = exp(T)                                              (e^{−1.702|x|}, 15 bits)
    h = ⌊a·2^(15+O−F) / (2^15 + w)⌋                         (|x|·σ(1.702|x|), O fraction bits)
    y = clamp(h) for q ≥ 0,  clamp(q·2^(O−F) + h) for q < 0 (floor shift when O < F)

layernorm "shift" (exact statistics of the unsigned codes u = q + 2^(in_bits−1), LayerNorm being
shift invariant; the squares by a shift-add squarer; mean and σ by two divisions by N once per
row, G = :data:`LN_GUARD` fraction bits; the normalisation a shift-subtract division per element)::

    u_i = q_i + 2^(in_bits−1),  S1 = Σ u_j,  S2 = Σ u_j²,  V = N·S2 − S1²   (= N²·variance)
    D  = ⌊√V⌋                                               (= N·σ)
    M  = ⌊S1·2^G / N⌋,  Σ = max(⌊D·2^G / N⌋, 1)              (μ and σ in G fraction bits)
    y_i = clamp(⌊(u_i·2^G − M)·2^O / Σ⌋)                    ((x − μ)/σ in O fraction bits)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Widest input or output (int64 intermediates stay exact up to here, rows ≤ 2^LOG2_MAX_ROW).
MAX_BITS = 16
#: Width of the non-linear units' input and output codes in the quantized model and the hardware.
NONLINEAR_BITS = 16
#: Fraction bits of the constants and of exp / erf values.
CONST_FRAC = 15
#: log2(e) in 14 fraction bits (the exponent multiplier of the softmax).
L2E_FRAC = 14
L2E = round(math.log2(math.e) * 2**L2E_FRAC)
#: 2^−r ≈ 1 − a·r + b·r² on [0, 1) (exact at both ends, max relative error 0.27 %).
EXP2_A = round(0.66988 * 2**CONST_FRAC)
EXP2_B = round((0.66988 - 0.5) * 2**CONST_FRAC)
#: log2 of the longest row the row-wise kernels (and their RTL) support.
LOG2_MAX_ROW = 12
#: i-GELU constants: the clip point of |x| (1.769·√2) and a/2 (the erf polynomial's square term).
GELU_CLIP = 1.769 * math.sqrt(2.0)
GELU_A = round(0.2888 / 2 * 2**CONST_FRAC)


@dataclass(frozen=True)
class IntSpec:
    """Integer formats of a kernel: input ``q·2^−in_frac`` (``in_bits`` signed), output
    ``y·2^−out_frac`` (``out_bits``; signed for LayerNorm and GELU, unsigned for softmax)."""

    in_bits: int
    in_frac: int
    out_bits: int
    out_frac: int

    def __post_init__(self) -> None:
        if not 2 <= self.in_bits <= MAX_BITS or not 2 <= self.out_bits <= MAX_BITS:
            raise ValueError(f"{self}: bits must be in 2..{MAX_BITS}")
        if not 0 <= self.in_frac <= self.in_bits or not 0 <= self.out_frac <= MAX_BITS + 1:
            raise ValueError(f"{self}: fraction bits out of range")


def _clamp_signed(y: I64, bits: int) -> I64:
    hi = (1 << (bits - 1)) - 1
    return np.clip(y, -hi - 1, hi).astype(np.int64)


def _check_input(q: I64, spec: IntSpec) -> I64:
    a = np.asarray(q)
    if a.dtype.kind not in "iu":
        raise TypeError(f"integer codes expected, got {a.dtype}")
    a = a.astype(np.int64)
    hi = (1 << (spec.in_bits - 1)) - 1
    if a.size and (int(a.max()) > hi or int(a.min()) < -hi - 1):
        raise ValueError(f"codes outside {spec.in_bits}-bit signed range")
    return a


def softmax_k(spec: IntSpec) -> int:
    """The reciprocal's exponent K of :func:`int_softmax`."""
    return CONST_FRAC + spec.out_bits + LOG2_MAX_ROW


def int_exp(d: I64, in_frac: int) -> I64:
    """e^{d·2^−in_frac} for ``d ≤ 0`` in :data:`CONST_FRAC` fraction bits (shift-based)."""
    u = (-d * L2E) >> L2E_FRAC
    z = u >> in_frac
    f = u & ((1 << in_frac) - 1)
    shift = 2 * in_frac
    p = (1 << CONST_FRAC) - ((f * ((EXP2_A << in_frac) - EXP2_B * f)) >> shift)
    out: I64 = p >> np.minimum(z, CONST_FRAC + 1)
    return out


def int_softmax(q: I64, spec: IntSpec) -> I64:
    """Integer softmax over the last axis (equations in the module docstring)."""
    a = _check_input(q, spec)
    if a.shape[-1] > 1 << LOG2_MAX_ROW:
        raise ValueError(f"row of {a.shape[-1]} > {1 << LOG2_MAX_ROW} elements")
    e = int_exp(a - a.max(axis=-1, keepdims=True), spec.in_frac)
    k = softmax_k(spec)
    r = (1 << k) // e.sum(axis=-1, keepdims=True)
    y: I64 = np.minimum((e * r) >> (k - spec.out_bits), (1 << spec.out_bits) - 1).astype(np.int64)
    return y


def isqrt(v: I64) -> I64:
    """⌊√v⌋ of non-negative int64 values below 2^62 (vectorised, exact)."""
    s = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    for _ in range(2):
        s = np.where(s * s > v, s - 1, s)
        s = np.where((s + 1) * (s + 1) <= v, s + 1, s)
    return s


def layernorm_k(spec: IntSpec) -> int:
    """The reciprocal's exponent K of :func:`int_layernorm`."""
    return spec.in_bits + LOG2_MAX_ROW + spec.out_frac + 2


def int_layernorm(q: I64, spec: IntSpec) -> I64:
    """Integer LayerNorm (without γ, β) over the last axis (equations in the module docstring)."""
    a = _check_input(q, spec)
    n = a.shape[-1]
    if n > 1 << LOG2_MAX_ROW:
        raise ValueError(f"row of {n} > {1 << LOG2_MAX_ROW} elements")
    s1 = a.sum(axis=-1, keepdims=True)
    s2 = (a * a).sum(axis=-1, keepdims=True)
    d = np.maximum(isqrt(n * s2 - s1 * s1), 1)
    k = layernorm_k(spec)
    r = (1 << k) // d
    return _clamp_signed(((n * a - s1) * r) >> (k - spec.out_frac), spec.out_bits)


def gelu_clip(in_frac: int) -> int:
    """The clip point C of :func:`int_gelu` in input codes."""
    return round(math.ldexp(GELU_CLIP, in_frac))


def int_gelu(q: I64, spec: IntSpec) -> I64:
    """Integer GELU, element-wise (I-BERT i-GELU; equations in the module docstring)."""
    a = _check_input(q, spec)
    if spec.out_frac > spec.in_frac + CONST_FRAC + 1:
        raise ValueError(f"{spec}: out_frac too large")
    c = gelu_clip(spec.in_frac)
    v = np.minimum(np.abs(a), c) - c
    erf = (1 << CONST_FRAC) - ((GELU_A * v * v) >> (2 * spec.in_frac))
    y = (a * ((1 << CONST_FRAC) + np.sign(a) * erf)) >> (CONST_FRAC + 1 + spec.in_frac - spec.out_frac)
    return _clamp_signed(y, spec.out_bits)


# ----------------------------------------------------------------------------- shift-and-add variants

#: Fraction bits of the shift LayerNorm's mean and σ (:func:`shift_layernorm`).
LN_GUARD = 4


def _floor_shift(v: I64, k: int) -> I64:
    """⌊v·2^k⌋ for either sign of ``k`` (a left shift, or a floor shift right)."""
    out: I64 = v << k if k >= 0 else v >> -k
    return out


def shift_exp(m: I64, in_frac: int) -> I64:
    """e^{−m·2^−in_frac} for ``m ≥ 0`` in :data:`CONST_FRAC` fraction bits, by shifts and adds
    only (log2 e ≈ 1 + 1/2 − 1/16, 2^−r ≈ 1 − r/2; module docstring)."""
    u = m + (m >> 1) - (m >> 4)
    z = u >> in_frac
    f = u & ((1 << in_frac) - 1)
    p = (1 << CONST_FRAC) - _floor_shift(f, CONST_FRAC - 1 - in_frac)
    out: I64 = p >> np.minimum(z, CONST_FRAC + 1)
    return out


def shift_softmax(q: I64, spec: IntSpec) -> I64:
    """Shiftmax over the last axis: shift exp, a floor division per element (module docstring)."""
    a = _check_input(q, spec)
    if a.shape[-1] > 1 << LOG2_MAX_ROW:
        raise ValueError(f"row of {a.shape[-1]} > {1 << LOG2_MAX_ROW} elements")
    e = shift_exp(a.max(axis=-1, keepdims=True) - a, spec.in_frac)
    total = e.sum(axis=-1, keepdims=True)
    y: I64 = np.minimum((e << spec.out_frac) // total, (1 << spec.out_bits) - 1).astype(np.int64)
    return y


def shift_gelu_exponent(spec: IntSpec) -> int:
    """The dividend's shift 15 + out_frac − in_frac of :func:`shift_gelu` (0 … 31)."""
    return CONST_FRAC + spec.out_frac - spec.in_frac


def shift_gelu(q: I64, spec: IntSpec) -> I64:
    """ShiftGELU, element-wise: x·σ(1.702x) from the shift exp and one floor division."""
    a = _check_input(q, spec)
    k = shift_gelu_exponent(spec)
    if not 0 <= k <= 2 * CONST_FRAC + 1:
        raise ValueError(f"{spec}: out_frac must be within in_frac − 15 … in_frac + 16")
    mag = np.abs(a)
    t = mag + (mag >> 1) + (mag >> 3) + (mag >> 4)
    w = shift_exp(t, spec.in_frac)
    h = (mag << k) // ((1 << CONST_FRAC) + w)
    y = np.where(a >= 0, h, _floor_shift(a, spec.out_frac - spec.in_frac) + h)
    return _clamp_signed(y, spec.out_bits)


def shift_layernorm_stats(q: I64, spec: IntSpec) -> tuple[I64, I64]:
    """(M, Σ) of :func:`shift_layernorm`: the row mean and σ of the unsigned codes in
    :data:`LN_GUARD` fraction bits (Σ ≥ 1), shaped for broadcasting over the row."""
    n = q.shape[-1]
    u = q + (1 << (spec.in_bits - 1))
    s1 = u.sum(axis=-1, keepdims=True)
    s2 = (u * u).sum(axis=-1, keepdims=True)
    d = isqrt(n * s2 - s1 * s1)
    return (s1 << LN_GUARD) // n, np.maximum((d << LN_GUARD) // n, 1)


def shift_layernorm(q: I64, spec: IntSpec) -> I64:
    """Integer LayerNorm (without γ, β) over the last axis, normalised by a floor division per
    element (module docstring)."""
    a = _check_input(q, spec)
    if a.shape[-1] > 1 << LOG2_MAX_ROW:
        raise ValueError(f"row of {a.shape[-1]} > {1 << LOG2_MAX_ROW} elements")
    mean, sigma = shift_layernorm_stats(a, spec)
    u = a + (1 << (spec.in_bits - 1))
    return _clamp_signed((((u << LN_GUARD) - mean) << spec.out_frac) // sigma, spec.out_bits)


# ----------------------------------------------------------------------------- float references


def _softmax_ref(x: F64) -> F64:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: F64 = e / e.sum(axis=-1, keepdims=True)
    return out


def _layernorm_ref(x: F64) -> F64:
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    out: F64 = (x - mu) / np.sqrt(var + 1e-12)
    return out


def _gelu_ref(x: F64) -> F64:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    out: F64 = 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    return out


@dataclass(frozen=True)
class IntOp:
    """A registry entry: the integer kernel, the float operator it approximates, whether it
    reduces over rows, whether its output is signed, and the absolute error it is held to
    (in output units, for inputs and outputs of 16 bits)."""

    name: str
    kernel: Callable[[I64, IntSpec], I64]
    reference: Callable[[F64], F64]
    rowwise: bool
    signed_out: bool
    max_abs_error: float
    description: str
    variant: str = "poly"

    def __call__(self, q: I64, spec: IntSpec) -> I64:
        return self.kernel(q, spec)

    def spec(self, in_bits: int, in_frac: int, out_bits: int) -> IntSpec:
        """The formats the quantized model uses: softmax's output is a probability in
        ``out_bits`` fraction bits, LayerNorm's leaves 5 integer bits (|y| < 32: rows ≤ 1024),
        GELU's keeps the input's scale."""
        if self.name == "softmax":
            return IntSpec(in_bits, in_frac, out_bits, out_bits)
        if self.name == "layernorm":
            return IntSpec(in_bits, in_frac, out_bits, out_bits - 6)
        return IntSpec(in_bits, in_frac, out_bits, in_frac)


INT_OPS: dict[str, IntOp] = {
    op.name: op
    for op in (
        IntOp("softmax", int_softmax, _softmax_ref, True, False, 0.004, "shift-based exp, row reciprocal"),
        IntOp("layernorm", int_layernorm, _layernorm_ref, True, True, 0.01, "integer mean/variance, isqrt"),
        IntOp("gelu", int_gelu, _gelu_ref, False, True, 0.025, "I-BERT i-GELU (erf polynomial)"),
    )
}


#: The kernel variants of each op kind: ``KERNELS[kind][variant]``. ``"poly"`` is
#: :data:`INT_OPS` (polynomial exp / erf, one reciprocal per row and multipliers), ``"shift"``
#: the shift-and-add kernels (no multiplier; equations in the module docstring).
VARIANTS: tuple[str, ...] = ("poly", "shift")
KERNELS: dict[str, dict[str, IntOp]] = {
    name: {
        "poly": op,
        "shift": {
            "softmax": IntOp(
                "softmax",
                shift_softmax,
                _softmax_ref,
                True,
                False,
                0.02,
                "Shiftmax, divide per element",
                "shift",
            ),
            "layernorm": IntOp(
                "layernorm",
                shift_layernorm,
                _layernorm_ref,
                True,
                True,
                0.01,
                "I-LayerNorm, divide per element",
                "shift",
            ),
            "gelu": IntOp("gelu", shift_gelu, _gelu_ref, False, True, 0.03, "ShiftGELU x·σ(1.702x)", "shift"),
        }[name],
    }
    for name, op in INT_OPS.items()
}


def kernel(kind: str, variant: str = "poly") -> IntOp:
    """The registry entry of ``kind``'s ``variant`` kernel (a clear error for unknown names)."""
    if kind not in KERNELS:
        raise ValueError(f"unknown non-linear op {kind!r} (known: {', '.join(KERNELS)})")
    if variant not in KERNELS[kind]:
        raise ValueError(f"unknown kernel variant {variant!r} (known: {', '.join(VARIANTS)})")
    return KERNELS[kind][variant]


def frac_bits_for(amax: float, bits: int) -> int:
    """Fraction bits of a ``bits``-bit signed fixed-point format whose range covers ``amax``."""
    top = (1 << (bits - 1)) - 1
    if amax <= 0:
        return bits - 1
    return int(min(max(math.floor(math.log2(top / amax)), 0), bits))
