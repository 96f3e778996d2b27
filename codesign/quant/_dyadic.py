"""Dyadic rescaling on torch tensors: :class:`Dyadic`, a scale (or one per channel) as integer
multipliers and shifts, applied as :mod:`hwmodel.arch.dyadic` defines it (the conventions, the
rounding and the widths are stated there: 31-bit M, shift 0 … 62, rounding half up, saturating).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hwmodel.arch.dyadic import (
    INPUT_BITS,
    MAX_OFFSET,
    MAX_SHIFT,
    MULTIPLIER_BITS,
    dyadic_pair,
    rescale,
    rounding,
)

__all__ = ["INPUT_BITS", "MAX_OFFSET", "MAX_SHIFT", "MULTIPLIER_BITS", "Dyadic", "dyadic_pair"]


@dataclass(frozen=True)
class Dyadic:
    """Integer multipliers and right shifts ``M·2^−s`` (int64 tensors of one shape: a scalar per
    tensor, or one per channel of the last axis), made by :meth:`from_scales`."""

    multiplier: torch.Tensor
    shift: torch.Tensor

    @classmethod
    def from_scales(cls, scales: torch.Tensor | float) -> Dyadic:
        """One ``(M, s)`` per element of ``scales`` (float64 or a float; see :func:`dyadic_pair`)."""
        flat = torch.as_tensor(scales, dtype=torch.float64).reshape(-1).tolist()
        pairs = [dyadic_pair(r) for r in flat]
        shape = torch.as_tensor(scales).shape
        mult = torch.tensor([p[0] for p in pairs], dtype=torch.int64).reshape(shape)
        shift = torch.tensor([p[1] for p in pairs], dtype=torch.int64).reshape(shape)
        return cls(mult, shift)

    def value(self) -> torch.Tensor:
        """``M·2^−s`` as float64 (for checks and reports; never on the integer path)."""
        return self.multiplier.double() * torch.exp2(-self.shift.double())

    def offset_for(self, values: torch.Tensor) -> torch.Tensor:
        """The integer offset ``c = round(v·2^s)`` that adds ``v`` (in output units, float64,
        built once from parameters) before the shift; refused beyond :data:`MAX_OFFSET`."""
        c = torch.round(values.double() * torch.exp2(self.shift.double()))
        if c.numel() and float(c.abs().max()) > MAX_OFFSET:
            raise ValueError("dyadic offset beyond 2^61: the constant does not fit the rescale")
        return c.to(torch.int64)

    def apply(self, x: torch.Tensor, lo: int, hi: int, offset: torch.Tensor | None = None) -> torch.Tensor:
        """``clamp(⌊(x·M + offset + 2^(s−1)) / 2^s⌋, lo, hi)`` of int64 codes ``x`` on the CPU
        (multiplier and offset broadcast over ``x``'s trailing axes): :func:`hwmodel.arch.dyadic.rescale`."""
        if x.dtype != torch.int64:
            raise TypeError(f"dyadic rescale of {x.dtype}: int64 codes expected")
        off = None if offset is None else offset.numpy()
        return torch.from_numpy(rescale(x.numpy(), self.multiplier.numpy(), self.shift.numpy(), lo, hi, off))

    @property
    def rounding(self) -> torch.Tensor:
        """The rounding constant 2^(s−1) (0 where s = 0)."""
        return torch.from_numpy(rounding(self.shift.numpy()))
