"""Dyadic rescaling: a real scale as an integer multiplier and a right shift (HAWQ-V3, I-BERT,
TFLite), the only arithmetic between the integer layers of the quantized model
(:mod:`codesign.quant._integer`) and what the accelerator's requantization lanes compute
(:mod:`hwmodel.rtl.requant`).

A real scale ``r`` becomes ``M·2^−s``:

* **multiplier** ``M``: :data:`MULTIPLIER_BITS` = 31 bits of magnitude (TFLite's 31-bit fixed-point
  multiplier), signed (a LayerNorm γ may be negative): ``r = m·2^e`` with ``|m| ∈ [½, 1)``,
  ``M = round(m·2^31)`` (half away from zero), ``s = 31 − e``; ``|M| = 2^31`` (m rounding up to 1)
  becomes ``2^30`` with ``s − 1``. So ``2^30 ≤ |M| < 2^31`` and ``|M·2^−s − r| ≤ 2^−(s+1)``
  (relative error ≤ 2^−31); a power of two is exact (``M = ±2^30``). ``r = 0`` is ``M = 0``.
* **shift** ``s`` ∈ [0, :data:`MAX_SHIFT`] (= 62): a scale whose M·2^−s would reach 2^31 is
  refused (``ValueError``); a scale so small
  that ``s`` would pass 62 keeps ``s = 62`` with a smaller ``M = round(r·2^62)`` (possibly 0).
* **apply** (:func:`rescale`): ``y = clamp(⌊(x·M + c + 2^(s−1)) / 2^s⌋, lo, hi)`` on int64
  tensors, ``c`` an optional integer offset in the product's units (a bias added before the
  shift: one rounding) — **rounding half up** (toward +∞: 2.5 → 3, −2.5 → −2; an adder and an
  arithmetic shift in hardware); ``s = 0`` is ``x·M`` exactly. The fake-quantized model rounds
  half to even (``torch.round``): the two differ only on exact ties.
* **width**: inputs must satisfy ``|x| < 2^`` :data:`INPUT_BITS` (= 31: an int32 accumulator, as
  TFLite's) and offsets ``|c| < 2^61``, so that ``x·M + c + 2^(s−1)`` stays inside int64; the
  apply checks the input and raises ``ValueError`` outside it (saturation happens after the
  shift, never by wrapping).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

#: Magnitude bits of the multiplier M (2^30 ≤ |M| < 2^31 for a normalised scale).
MULTIPLIER_BITS = 31
#: Largest right shift s (x·M + 2^(s−1) then stays inside int64).
MAX_SHIFT = 62
#: Magnitude bits of an input x: |x| < 2^31 (an int32 accumulator).
INPUT_BITS = 31
#: Largest |offset| c added before the shift (|x·M| < 2^62, |c| < 2^61, 2^(s−1) ≤ 2^61: no overflow).
MAX_OFFSET = (1 << 61) - 1


def dyadic_pair(scale: float) -> tuple[int, int]:
    """``(M, s)`` with ``M·2^−s ≈ scale`` (the conventions of the module docstring)."""
    r = float(scale)
    if not math.isfinite(r):
        raise ValueError(f"dyadic scale {scale!r}: not a finite number")
    if r == 0.0:
        return 0, 0
    m, e = math.frexp(abs(r))  # |r| = m·2^e, m ∈ [½, 1)
    mult = math.floor(m * 2**MULTIPLIER_BITS + 0.5)  # exact: m·2^31 has ≤ 53 significant bits
    shift = MULTIPLIER_BITS - e
    if mult == 1 << MULTIPLIER_BITS:
        mult, shift = mult >> 1, shift - 1
    if shift < 0:
        raise ValueError(f"dyadic scale {scale!r}: ≥ 2^{MULTIPLIER_BITS} (shift {shift} < 0)")
    if shift > MAX_SHIFT:
        mult = math.floor(math.ldexp(abs(r), MAX_SHIFT) + 0.5)
        shift = MAX_SHIFT
    return (mult if r > 0 else -mult), shift


def rounding(shift: I64) -> I64:
    """The rounding constant 2^(s−1) of each shift (0 where s = 0)."""
    s = np.asarray(shift, dtype=np.int64)
    return np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)


def rescale(x: I64, mult: I64, shift: I64, lo: int, hi: int, offset: I64 | None = None) -> I64:
    """``clamp(⌊(x·M + offset + 2^(s−1)) / 2^s⌋, lo, hi)`` of int64 codes ``x`` (``mult``,
    ``shift`` and ``offset`` broadcast over ``x``'s trailing axes); a new array. ``ValueError``
    for an input beyond ±2^:data:`INPUT_BITS`, ``TypeError`` for non-int64 codes."""
    x = np.asarray(x)
    if x.dtype != np.int64:
        raise TypeError(f"dyadic rescale of {x.dtype}: int64 codes expected")
    if x.size and max(-int(x.min()), int(x.max())) >= 1 << INPUT_BITS:
        raise ValueError(f"dyadic rescale: an input beyond ±2^{INPUT_BITS} would overflow int64")
    acc = x * np.asarray(mult, dtype=np.int64)
    acc += rounding(shift) if offset is None else np.asarray(offset, dtype=np.int64) + rounding(shift)
    acc >>= np.asarray(shift, dtype=np.int64)
    return np.clip(acc, lo, hi)


#: Stored widths of a rescale's parameters (the tables the requantization lanes read): a signed
#: multiplier (31 magnitude bits and the sign), a shift 0 … 62, a signed offset (|c| < 2^61).
MULT_BITS = MULTIPLIER_BITS + 1
SHIFT_BITS = MAX_SHIFT.bit_length()
OFFSET_BITS = MAX_OFFSET.bit_length() + 1
