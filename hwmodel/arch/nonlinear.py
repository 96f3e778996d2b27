"""Cycles of the non-linear units (softmax, LayerNorm, GELU) as :mod:`hwmodel.rtl.nonlinear` builds them.

A unit has ``lanes`` independent lanes. GELU is a 4-stage pipeline taking one element per lane
and cycle. Softmax and LayerNorm give each lane whole rows, one after another, each row held in
the lane's row buffer (2^log2_rows words; ``log2_rows`` covers the longest row of the workload)
and read back twice (softmax: exp pass and normalise pass) or once (LayerNorm: normalise pass).
Per row of N elements, from its first input to the next row's first input:

* softmax:   ``3N + Q + 5``, Q = out_bits + 13 reciprocal steps (one quotient bit a cycle);
* LayerNorm: ``2N + M + S + Q + 4``, M = in_bits + log2_rows + 1 shift-add steps (N·S2 and S1²,
  one bit a cycle), S = log2_rows + in_bits square-root steps (one result bit a cycle), Q = K + 1
  reciprocal steps (K = in_bits + 12 + out_frac + 2).

The shift-and-add variants (``variant="shift"``, :data:`hwmodel.arch.intops.KERNELS`) divide per
element in a pipelined shift-subtract divider of :data:`DIV_BITS_PER_CYCLE` quotient bits a cycle
(L(b) = ⌈b / DIV_BITS_PER_CYCLE⌉ cycles for b quotient bits):

* softmax:   ``3N + L + 5``, L = L(out_frac + 1) (no row reciprocal);
* LayerNorm: ``2N + M + S + P + L + 5``, M and S as above, P = in_bits + LN_GUARD steps of the
  two divisions by N (mean and σ, side by side), L = L(out_bits);
* GELU: a pipeline of ``L + 4`` stages, L = L(in_bits + out_frac − in_frac).

An op of ``rows`` rows on ``lanes`` lanes takes ``⌈rows/lanes⌉`` row times (the last row's last
output is in the cycle before); GELU over E elements takes ``⌈E/lanes⌉ + 4`` cycles (``⌈E/lanes⌉ +
L + 4`` for the shift GELU). The tests hold the PyRTL simulation to these formulas cycle for cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hwmodel.arch.bits import bits_for
from hwmodel.arch.buffers import BankMemory, Buffer
from hwmodel.arch.intops import (
    CONST_FRAC,
    INT_OPS,
    LN_GUARD,
    NONLINEAR_BITS,
    VARIANTS,
    IntSpec,
    layernorm_k,
    softmax_k,
)

#: Width of a row-buffer word (input codes and exp values ≤ 2^15 both fit).
BUFFER_BITS = 16
#: Pipeline depth of a GELU lane (element in → its result out).
GELU_LATENCY = 4
#: The non-linear unit kinds (:data:`hwmodel.arch.intops.INT_OPS` keys, the workload's op kinds).
KINDS: tuple[str, ...] = tuple(INT_OPS)
#: Quotient bits a shift variant's pipelined divider resolves per cycle (per register stage).
DIV_BITS_PER_CYCLE = 2


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown kernel variant {variant!r} (known: {', '.join(VARIANTS)})")


def divider_latency(quotient_bits: int) -> int:
    """Register stages of a pipelined shift-subtract divider of ``quotient_bits`` quotient bits."""
    return -(-quotient_bits // DIV_BITS_PER_CYCLE)


def shift_quotient_bits(kind: str, spec: IntSpec) -> int:
    """Quotient bits of a shift lane's per-element division: softmax ⌊e·2^O / S⌋ ≤ 2^O, GELU's
    h ≤ 2^(in_bits − 1 + O − F), LayerNorm's |y| (saturated above 2^(out_bits − 1))."""
    if kind == "softmax":
        return spec.out_frac + 1
    if kind == "gelu":
        return max(1, spec.in_bits + spec.out_frac - spec.in_frac)
    return spec.out_bits


def mean_steps(spec: IntSpec) -> int:
    """Quotient bits of the shift LayerNorm's divisions by N (mean and σ of codes below 2^in_bits,
    :data:`hwmodel.arch.intops.LN_GUARD` fraction bits)."""
    return spec.in_bits + LN_GUARD


def gelu_latency(spec: IntSpec, variant: str = "poly") -> int:
    """Pipeline depth of a GELU lane (element in → its result out)."""
    _check_variant(variant)
    if variant == "poly":
        return GELU_LATENCY
    return divider_latency(shift_quotient_bits("gelu", spec)) + 4


def unit_spec(kind: str, bits: int) -> IntSpec:
    """The formats a unit of ``bits``-bit inputs and outputs is built for (6 integer bits in; the
    input fraction bits only move constants, not the structure)."""
    return INT_OPS[kind].spec(bits, bits - 6, bits)


def design_spec(kind: str) -> IntSpec:
    """The formats the accelerator's units are built for (the quantized model's ``nonlinear: int``
    uses the same widths)."""
    return unit_spec(kind, NONLINEAR_BITS)


def reciprocal_steps(kind: str, spec: IntSpec, log2_rows: int) -> int:
    """Quotient bits of the row reciprocal ⌊2^K / D⌋ (D ≥ 2^15 for softmax, ≥ 1 for LayerNorm)."""
    if kind == "softmax":
        return softmax_k(spec) - CONST_FRAC + 1
    return layernorm_k(spec) + 1


def isqrt_steps(spec: IntSpec, log2_rows: int) -> int:
    """Result bits of LayerNorm's ⌊√(N·S2 − S1²)⌋ (the radicand is below 2^(2·steps))."""
    return log2_rows + spec.in_bits


def variance_steps(spec: IntSpec, log2_rows: int) -> int:
    """Shift-add steps of LayerNorm's N·S2 and S1² (the bits of |S1|)."""
    return spec.in_bits + log2_rows + 1


def row_cycles(kind: str, spec: IntSpec, row_len: int, log2_rows: int, variant: str = "poly") -> int:
    """Cycles one lane spends on a row of ``row_len`` (first input → the next row's first input)."""
    n = row_len
    _check_variant(variant)
    if variant == "shift" and kind in ("softmax", "layernorm"):
        div = divider_latency(shift_quotient_bits(kind, spec))
        if kind == "softmax":
            return 3 * n + div + 5
        steps = variance_steps(spec, log2_rows) + isqrt_steps(spec, log2_rows) + mean_steps(spec)
        return 2 * n + steps + div + 5
    if kind == "softmax":
        return 3 * n + reciprocal_steps(kind, spec, log2_rows) + 5
    if kind == "layernorm":
        steps = variance_steps(spec, log2_rows) + isqrt_steps(spec, log2_rows)
        return 2 * n + steps + reciprocal_steps(kind, spec, log2_rows) + 4
    raise ValueError(f"{kind}: not a row-wise unit")


def row_buffer(kind: str, lanes: int, log2_rows: int) -> Buffer | None:
    """The row buffers of a unit: one bank of 2^log2_rows × 16 per lane (none for GELU)."""
    if kind == "gelu" or not log2_rows:
        return None
    return Buffer(f"{kind}_rows", lanes, 1 << log2_rows, BUFFER_BITS, double_buffered=False)


def row_buffer_memory(kind: str, lanes: int, log2_rows: int, synth_family: str) -> BankMemory:
    """How the unit's row buffers are built (BRAM or LUT RAM, :mod:`hwmodel.arch.buffers`)."""
    buf = row_buffer(kind, lanes, log2_rows)
    return BankMemory(0.0) if buf is None else buf.memory(synth_family)


def log2_rows_for(row_len: int) -> int:
    """Address bits of a row buffer that holds ``row_len`` elements."""
    return bits_for(row_len)


def stream_cycles(
    kind: str, spec: IntSpec, row_lens: list[int], lanes: int, log2_rows: int, variant: str = "poly"
) -> int:
    """Cycles of a stream of rows (lengths ``row_lens``, row i on lane i mod lanes, each lane's
    rows back to back) from the first input to the cycle after the last output."""
    per_lane = [row_lens[lane::lanes] for lane in range(lanes)]
    if kind == "gelu":
        return max(sum(lens) for lens in per_lane) + gelu_latency(spec, variant)
    return max(sum(row_cycles(kind, spec, n, log2_rows, variant) for n in lens) for lens in per_lane)


@lru_cache(maxsize=4096)  # a search meets the same (op, lanes) many times
def op_cycles(kind: str, rows: int, row_len: int, lanes: int, log2_rows: int, variant: str = "poly") -> int:
    """Cycles of one op (``rows`` × ``row_len``) on a unit of ``lanes`` lanes built for
    :func:`design_spec` with ``log2_rows`` buffer address bits (``variant``: the kernel)."""
    if kind == "gelu":
        return -(-rows * row_len // lanes) + gelu_latency(design_spec(kind), variant)
    return -(-rows // lanes) * row_cycles(kind, design_spec(kind), row_len, log2_rows, variant)


@dataclass(frozen=True)
class Successor:
    """The non-linear op that follows a GEMM, as the controller hands it its rows
    (:data:`hwmodel.arch.controller.NL_MODES`): GELU each output tile (``tile``), softmax and
    LayerNorm each m tile's whole rows (``row``) or, for an attention matmul run transposed, each
    head's (``head``: ``head_rows`` rows). Rows are ``row_len`` elements long; the unit has
    ``lanes`` lanes, ``log2_rows`` row-buffer address bits and runs kernel ``variant``."""

    kind: str
    mode: str
    lanes: int
    log2_rows: int
    row_len: int
    head_rows: int = 0
    variant: str = "poly"

    def job_cycles(self, em: int, en: int) -> int:
        """Cycles of the job a tile group of ``em`` tokens × ``en`` channels hands over."""
        if self.mode == "tile":
            return op_cycles(self.kind, em, en, self.lanes, self.log2_rows, self.variant)
        rows = self.head_rows if self.mode == "head" else em
        return op_cycles(self.kind, rows, self.row_len, self.lanes, self.log2_rows, self.variant)

    @property
    def row_time(self) -> int:
        """Cycles of one lane's row (0 for GELU): a row job of r rows takes ⌈r/lanes⌉ of them."""
        if self.kind == "gelu":
            return 0
        return row_cycles(self.kind, design_spec(self.kind), self.row_len, self.log2_rows, self.variant)

    @property
    def latency(self) -> int:
        """Pipeline depth of a GELU lane (0 for the row-wise kinds): an element job of E
        elements takes ⌈E/lanes⌉ + latency."""
        return gelu_latency(design_spec(self.kind), self.variant) if self.kind == "gelu" else 0
