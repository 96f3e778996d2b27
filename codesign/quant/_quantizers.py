"""Quantizers (DESIGN.md §3) and their registry.

Every quantizer is a pure function ``(x, scale, bits) -> x̂`` with ``scale`` broadcastable to
``x`` (per tensor, or per output channel as ``[C, 1, ...]``):

* ``fixed``    symmetric uniform: q = clamp(round(x/s), −2^(b−1), 2^(b−1)−1), x̂ = s·q.
* ``unsigned`` unsigned uniform for values ≥ 0 (post-softmax): q = clamp(round(x/s), 0, 2^b−1).
* ``pot``      power-of-two: x̂ = s·sign(x)·2^e, e = clamp(round(log2|x/s|), e_min, 0) with b bits
  including sign and one magnitude code reserved for zero, e_min = −(2^(b−1)−2). Rounding is in
  the log domain (|x/s| ≥ 2^(e+½) rounds up); |x/s| < 2^(e_min−1) — below half the smallest level —
  gives zero.
* ``log2``     unsigned power-of-two for values in [0, s] (post-softmax): x̂ = s·2^e, e ∈
  [−(2^b−2), 0], one code for zero, same rounding as ``pot``.

Scales come from observers: per-output-channel ``max`` or ``mse`` for weights; per-tensor ``max``,
``percentile`` or ``mse`` for activations (calibrated on a calibration set).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

QuantFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def qmax_signed(bits: int) -> int:
    return int(2 ** (bits - 1) - 1)


def pot_min_exponent(bits: int) -> int:
    """Smallest exponent of a signed power-of-two code of ``bits`` bits (one code for zero)."""
    return int(-(2 ** (bits - 1) - 2))


def log2_min_exponent(bits: int) -> int:
    """Smallest exponent of an unsigned power-of-two code of ``bits`` bits (one code for zero)."""
    return int(-(2**bits - 2))


def _in_place(t: torch.Tensor) -> bool:
    """Whether ``t``, a fresh intermediate, may be rounded, clamped and scaled in place: no
    gradient is recorded for it (in place the same values, without three temporaries; the
    evaluator's forward passes spend a third of their time in these activation quantizers)."""
    return not (t.requires_grad and torch.is_grad_enabled())


def _round_clamp(x: torch.Tensor, scale: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``clamp(round(x / scale), lo, hi)``."""
    t = x / scale
    if _in_place(t):
        return t.round_().clamp_(lo, hi)
    return torch.clamp(torch.round(t), lo, hi)


def fixed_codes(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes of the symmetric uniform quantizer (as float tensor of integers)."""
    q = qmax_signed(bits)  # bounds as floats: a pot<8> weight's uniform grid (QONNX) has 128 bits
    return _round_clamp(x, scale, float(-q - 1), float(q))


def _scaled(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``codes * scale``, in place when that gives the same tensor (shape and dtype)."""
    same = codes.shape == torch.broadcast_shapes(codes.shape, scale.shape)  # type: ignore[no-untyped-call]
    if same and _in_place(codes) and codes.dtype == torch.result_type(codes, scale):
        return codes.mul_(scale)
    return codes * scale


def quantize_fixed(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    return _scaled(fixed_codes(x, scale, bits), scale)


def quantize_unsigned(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    return _scaled(_round_clamp(x, scale, 0.0, float(2**bits - 1)), scale)


def _pot_magnitude(a: torch.Tensor, e_min: int) -> torch.Tensor:
    """|x/s| → 2^e (log-domain rounding, e ∈ [e_min, 0]) or 0 below 2^(e_min−1)."""
    tiny = torch.finfo(a.dtype).tiny
    e = torch.clamp(torch.round(torch.log2(torch.clamp(a, min=tiny))), e_min, 0)
    return torch.where(a < 2.0 ** (e_min - 1), torch.zeros_like(a), torch.exp2(e))


def quantize_pot(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.sign(x) * _pot_magnitude(torch.abs(x / scale), pot_min_exponent(bits)) * scale


def quantize_log2(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    a = torch.clamp(x / scale, min=0.0)
    return _pot_magnitude(a, log2_min_exponent(bits)) * scale


def pot_codes(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed integer codes of the PoT quantizer: 0 for zero, ±(e − e_min + 1) otherwise."""
    e_min = pot_min_exponent(bits)
    mag = _pot_magnitude(torch.abs(x / scale), e_min)
    code = torch.where(mag > 0, torch.log2(torch.clamp(mag, min=2.0**e_min)) - e_min + 1, 0.0)
    return torch.sign(x) * code


def pot_decode(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`pot_codes` (without the scale)."""
    e_min = pot_min_exponent(bits)
    mag = torch.where(codes != 0, torch.exp2(torch.abs(codes) - 1 + e_min), 0.0)
    return torch.sign(codes) * mag


@dataclass(frozen=True)
class Quantizer:
    """A registry entry: the function, whether it is signed, and its integer code range."""

    name: str
    fn: QuantFn
    signed: bool
    description: str

    def __call__(self, x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
        return self.fn(x, scale, bits)

    def levels(self, bits: int) -> torch.Tensor:
        """All representable values for scale 1 (sorted, float64)."""
        if self.name == "fixed":
            q = qmax_signed(bits)
            return torch.arange(-q - 1, q + 1, dtype=torch.float64)
        if self.name == "unsigned":
            return torch.arange(0, 2**bits, dtype=torch.float64)
        if self.name == "pot":
            mags = torch.exp2(torch.arange(pot_min_exponent(bits), 1, dtype=torch.float64))
            return torch.cat([-mags.flip(0), torch.zeros(1, dtype=torch.float64), mags])
        mags = torch.exp2(torch.arange(log2_min_exponent(bits), 1, dtype=torch.float64))
        return torch.cat([torch.zeros(1, dtype=torch.float64), mags])

    def max_level(self, bits: int) -> float:
        """Largest representable value for scale 1 (the clip point)."""
        return (
            float(qmax_signed(bits))
            if self.name == "fixed"
            else (float(2**bits - 1) if self.name == "unsigned" else 1.0)
        )


QUANTIZERS: dict[str, Quantizer] = {
    q.name: q
    for q in (
        Quantizer("fixed", quantize_fixed, True, "symmetric uniform fixed-point"),
        Quantizer("pot", quantize_pot, True, "signed power-of-two (log2) weights"),
        Quantizer("unsigned", quantize_unsigned, False, "unsigned uniform (post-softmax)"),
        Quantizer("log2", quantize_log2, False, "unsigned log2 (post-softmax)"),
    )
}


def get_quantizer(name: str) -> Quantizer:
    from codesign.errors import UserError

    try:
        return QUANTIZERS[name]
    except KeyError:
        raise UserError(f"quantizer {name!r}: allowed {', '.join(QUANTIZERS)}") from None


# ----------------------------------------------------------------------------- observers

_CLIP_GRID = torch.linspace(0.3, 1.0, 36)
#: elements of one block of the vectorised clip search (bounds its memory: 4 bytes each, a few temporaries)
_MSE_BLOCK_ELEMENTS = 1 << 23


def _clip_errors(rows: torch.Tensor, cands: torch.Tensor, bits: int, quantizer: Quantizer) -> torch.Tensor:
    """Squared quantization error ``[G, R]`` of each of ``rows [R, K]`` at each candidate scale
    ``cands [G, R]``."""
    return ((quantizer(rows[None], cands[:, :, None], bits) - rows[None]) ** 2).sum(2)


def channel_scales(w: torch.Tensor, bits: int, quantizer: Quantizer, method: str = "mse") -> torch.Tensor:
    """Per-output-channel scales ``[C, 1, ...]`` for a weight ``[C, ...]``.

    ``max``: the channel's max |w| maps to the largest level. ``mse``: the clip point is searched
    over 0.3–1.0 × max |w| to minimise the channel's squared quantization error.
    """
    flat = w.detach().reshape(w.shape[0], -1)
    amax = flat.abs().amax(dim=1).clamp(min=1e-12)
    top = quantizer.max_level(bits)
    if method == "max":
        best = amax / top
    else:
        cands = (amax[None, :] * _CLIP_GRID[:, None]) / top  # [G, C]
        # all clip points at once, in blocks of rows (each row's error is its own sum)
        rows = max(1, _MSE_BLOCK_ELEMENTS // (cands.shape[0] * flat.shape[1]))
        err = torch.cat(
            [
                _clip_errors(flat[i : i + rows], cands[:, i : i + rows], bits, quantizer)
                for i in range(0, len(flat), rows)
            ],
            dim=1,
        )  # [G, C]
        best = cands.gather(0, err.argmin(0, keepdim=True))[0]
    return best.reshape(-1, *([1] * (w.ndim - 1)))


def tensor_scale(
    sample: torch.Tensor, amax: float, bits: int, quantizer: Quantizer, method: str = "mse"
) -> float:
    """Per-tensor scale from a calibration sample (absolute values or raw values).

    ``max``: the largest |x| seen; ``percentile``: the 99.99th percentile of |x|; ``mse``: the clip
    point in 0.3–1.0 × max minimising the squared error on the sample.
    """
    top = quantizer.max_level(bits)
    amax = max(float(amax), 1e-12)
    if method == "max":
        return amax / top
    if method == "percentile":
        k = torch.quantile(sample.abs().float(), 0.9999).item()
        return max(float(k), 1e-12) / top
    best_s, best_err = amax / top, float("inf")
    for r in _CLIP_GRID.tolist():
        s = amax * r / top
        err = float(((quantizer(sample, torch.tensor(s), bits) - sample) ** 2).sum())
        if err < best_err:
            best_s, best_err = s, err
    return best_s
