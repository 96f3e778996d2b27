"""The program's reference semantics: run an encoded program on a DRAM image, reading everything
(descriptors, weights, tables, activations) from that image and writing the results back into it.

This is the golden model the accelerator's RTL is held to (what each descriptor means, module
docstring of :mod:`hwmodel.arch.program`); it computes with the integer program's own arithmetic
(:func:`codesign.quant._integer.int_matmul`, :class:`codesign.quant.Dyadic`, the
:mod:`hwmodel.arch.intops` kernels, :func:`codesign.quant._integer.log2_codes`), so that running
a compiled program equals :class:`codesign.quant.IntegerViT` bit for bit exactly when the
program and its DRAM image are complete and correct.
"""

from __future__ import annotations

import numpy as np
import torch

from codesign.program._compile import BIAS_BITS
from codesign.quant._dyadic import Dyadic
from codesign.quant._integer import int_matmul, log2_codes
from hwmodel.arch.dyadic import MULT_BITS, OFFSET_BITS, SHIFT_BITS
from hwmodel.arch.engine import decode_pot
from hwmodel.arch.intops import VARIANTS, IntSpec, kernel
from hwmodel.arch.program import (
    F_B_KMAJOR,
    F_LOG2,
    F_OFFSET_PER_ROW,
    F_RAW,
    F_RESIDUAL,
    F_WEIGHT,
    OPCODES,
    Descriptor,
    Operand,
    decode_program,
    read_operand,
    write_operand,
)


class MemoryFault(ValueError):
    """An access outside the DRAM image, or a value its operand cannot hold."""


def read(mem: np.ndarray, op: Operand, shape: tuple[int, int, int]) -> torch.Tensor:
    """Operand ``op`` as int64 ``(heads, rows, cols)``."""
    try:
        return torch.from_numpy(read_operand(mem, op, shape))
    except (IndexError, ValueError) as exc:
        raise MemoryFault(str(exc)) from exc


def write(mem: np.ndarray, op: Operand, values: torch.Tensor) -> None:
    """Store int64 ``values (heads, rows, cols)`` at operand ``op`` (refused if they do not fit)."""
    try:
        write_operand(mem, op, values.numpy())
    except (IndexError, ValueError) as exc:
        raise MemoryFault(str(exc)) from exc


def _table(mem: np.ndarray, addr: int, n: int, bits: int, signed: bool = True) -> torch.Tensor:
    """A table of ``n`` codes of ``bits`` at ``addr``."""
    return read(mem, Operand(addr, n, 0, bits, int(signed)), (1, 1, n)).reshape(-1)


def _rescale(
    mem: np.ndarray, d: Descriptor, x: torch.Tensor, first: int, count: int, lo: int, hi: int
) -> torch.Tensor:
    """The epilogue's dyadic rescale of ``x`` (last axis: channels ``first …`` of the tables)."""
    mult = _table(mem, d.mult_addr, d.table_len, MULT_BITS)
    shift = _table(mem, d.shift_addr, d.table_len, SHIFT_BITS, signed=False)
    if d.table_len == 1:
        mult, shift = mult.reshape(()), shift.reshape(())
    else:
        mult, shift = mult[first : first + count], shift[first : first + count]
    offset = None
    if d.offset_addr:
        rows = int(x.shape[-2]) if d.has(F_OFFSET_PER_ROW) else 1
        offset = _table(mem, d.offset_addr, rows * d.table_len, OFFSET_BITS)
        offset = offset.reshape(rows, d.table_len) if d.has(F_OFFSET_PER_ROW) else offset
        offset = offset[..., first : first + count]
    return Dyadic(mult, shift).apply(x, lo, hi, offset)


def _weights(mem: np.ndarray, d: Descriptor) -> torch.Tensor:
    """The weight values ``[n, k]``: codes; a PoT channel's b bits decoded as the engine does
    (:func:`hwmodel.arch.engine.decode_pot`)."""
    codes = read(mem, d.b, (1, d.n, d.k))[0]
    if not d.pot_addr:
        return codes
    pot = _table(mem, d.pot_addr, d.n, 1, signed=False).bool()
    raw = codes[pot] & ((1 << d.b.bits) - 1)
    values = codes.clone()
    values[pot] = torch.from_numpy(decode_pot(raw.numpy(), d.b.bits))
    return values


def gemm_accumulators(mem: np.ndarray, d: Descriptor) -> torch.Tensor:
    """GEMM ``d``'s accumulators before the bias, ``(repeat or 1, m, n)``: :func:`int_matmul` of
    its operands as the DRAM image holds them."""
    a = read(mem, d.a, (d.repeat, d.m, d.k))
    if d.has(F_WEIGHT):
        b = _weights(mem, d)[None]
    elif d.has(F_B_KMAJOR):
        b = read(mem, d.b, (d.repeat, d.k, d.n)).transpose(1, 2)
    else:
        b = read(mem, d.b, (d.repeat, d.n, d.k))
    return int_matmul(a, b.transpose(1, 2))


def _gemm(mem: np.ndarray, d: Descriptor) -> None:
    gemm_epilogue(mem, d, gemm_accumulators(mem, d))


def gemm_epilogue(mem: np.ndarray, d: Descriptor, acc: torch.Tensor) -> None:
    """The epilogue of GEMM ``d`` on its int64 accumulators ``acc`` (``repeat, m, n``, bias not yet
    added): bias, then the raw sums, the residual add or the rescale to each output segment,
    written to the outputs (what :mod:`hwmodel.rtl.epilogue` is held to)."""
    if d.bias_addr:
        acc = acc + _table(mem, d.bias_addr, d.n, BIAS_BITS)
    if d.has(F_RAW):
        write(mem, d.c, acc)
        return
    if d.has(F_RESIDUAL):
        branch = _rescale(mem, d, acc, 0, d.n, d.lo, d.hi)
        skip = Dyadic(torch.tensor(d.skip_mult), torch.tensor(d.skip_shift))
        res = skip.apply(read(mem, d.r, (d.repeat, d.m, d.n)), d.lo, d.hi)
        write(mem, d.c, (res + branch).clamp(d.lo, d.hi))
        return
    cols = d.seg_cols if d.segments > 1 else d.n
    for seg in range(d.segments):
        operand, lo, hi = d.output(seg)
        part = acc[..., seg * cols : (seg + 1) * cols]
        write(mem, operand, _rescale(mem, d, part, seg * cols, cols, lo, hi))


def nonlinear_op(mem: np.ndarray, d: Descriptor) -> None:
    """A ``layernorm`` / ``softmax`` / ``gelu`` descriptor on the image (what
    :mod:`hwmodel.rtl.nl_op` is held to)."""
    x = read(mem, d.a, (1, d.m, d.n))[0]
    spec = IntSpec(d.in_bits, d.in_frac, d.out_bits, d.out_frac)
    top = (1 << (d.in_bits - 1)) - 1
    op = kernel(d.kind, VARIANTS[d.variant])
    y = torch.from_numpy(np.ascontiguousarray(op(x.clamp(-top - 1, top).numpy(), spec))).to(torch.int64)
    out = log2_codes(y, d.out_frac, d.bits) if d.has(F_LOG2) else _rescale(mem, d, y, 0, d.n, d.lo, d.hi)
    write(mem, d.c, out[None])


def execute(mem: np.ndarray, program_base: int = 0) -> int:
    """Run the program at ``program_base`` of the DRAM image ``mem`` (uint8, modified in place);
    returns the number of ops run. :class:`MemoryFault` on an access outside the image."""
    if mem.dtype != np.uint8 or mem.ndim != 1:
        raise TypeError("the DRAM image is a 1-D uint8 array")
    try:
        ops = decode_program(mem[program_base:].data)
    except ValueError as exc:
        raise MemoryFault(f"no program at {program_base:#x}: {exc}") from exc
    for d in ops:
        execute_op(mem, d)
    return len(ops)


def execute_op(mem: np.ndarray, d: Descriptor) -> None:
    """Run one descriptor on the DRAM image ``mem`` (modified in place): a GEMM with its
    epilogue, or a non-linear op."""
    if d.opcode == OPCODES["gemm"]:
        _gemm(mem, d)
    else:
        nonlinear_op(mem, d)
