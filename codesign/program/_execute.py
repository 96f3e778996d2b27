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

from codesign.quant._dyadic import Dyadic
from codesign.quant._integer import int_matmul, log2_codes
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
)

_DTYPES = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


class MemoryFault(ValueError):
    """An access outside the DRAM image, or a value its element cannot hold."""


def _strided(mem: np.ndarray, op: Operand, shape: tuple[int, int, int]) -> np.ndarray:
    """A view of ``mem`` (uint8) as operand ``op``'s ``(heads, rows, cols)`` elements."""
    if op.bytes not in _DTYPES:
        raise MemoryFault(f"operand at {op.addr:#x}: element of {op.bytes} bytes")
    heads, rows, cols = shape
    span = ((heads - 1) * op.head_stride + (rows - 1) * op.row_stride + cols) * op.bytes
    if op.addr % op.bytes or op.addr + span > mem.size or min(shape) <= 0:
        raise MemoryFault(f"operand at {op.addr:#x} ({span} bytes) outside the {mem.size}-byte image")
    flat = mem[op.addr : op.addr + span].view(_DTYPES[op.bytes])
    b = op.bytes
    return np.lib.stride_tricks.as_strided(
        flat, shape=shape, strides=(op.head_stride * b, op.row_stride * b, b), writeable=True
    )


def read(mem: np.ndarray, op: Operand, shape: tuple[int, int, int]) -> torch.Tensor:
    """Operand ``op`` as int64 ``(heads, rows, cols)``."""
    return torch.from_numpy(_strided(mem, op, shape).astype(np.int64))


def write(mem: np.ndarray, op: Operand, values: torch.Tensor) -> None:
    """Store int64 ``values (heads, rows, cols)`` at operand ``op`` (refused if they do not fit)."""
    view = _strided(mem, op, tuple(values.shape))  # type: ignore[arg-type]
    info = np.iinfo(view.dtype)
    if values.numel() and (int(values.min()) < info.min or int(values.max()) > info.max):
        raise MemoryFault(f"values for {op.addr:#x} do not fit {view.dtype}")
    view[...] = values.numpy()


def _table(mem: np.ndarray, addr: int, n: int, dtype: type[np.integer]) -> torch.Tensor:
    size = np.dtype(dtype).itemsize
    if addr % size or addr + n * size > mem.size:
        raise MemoryFault(f"table at {addr:#x} outside the image")
    return torch.from_numpy(mem[addr : addr + n * size].view(dtype).astype(np.int64))


def _rescale(
    mem: np.ndarray, d: Descriptor, x: torch.Tensor, first: int, count: int, lo: int, hi: int
) -> torch.Tensor:
    """The epilogue's dyadic rescale of ``x`` (last axis: channels ``first …`` of the tables)."""
    mult = _table(mem, d.mult_addr, d.table_len, np.int32)
    shift = _table(mem, d.shift_addr, d.table_len, np.uint8)
    if d.table_len == 1:
        mult, shift = mult.reshape(()), shift.reshape(())
    else:
        mult, shift = mult[first : first + count], shift[first : first + count]
    offset = None
    if d.offset_addr:
        rows = int(x.shape[-2]) if d.has(F_OFFSET_PER_ROW) else 1
        offset = _table(mem, d.offset_addr, rows * d.table_len, np.int64)
        offset = offset.reshape(rows, d.table_len) if d.has(F_OFFSET_PER_ROW) else offset
        offset = offset[..., first : first + count]
    return Dyadic(mult, shift).apply(x, lo, hi, offset)


def _weights(mem: np.ndarray, d: Descriptor) -> torch.Tensor:
    """The weight values ``[n, k]``: codes, PoT channels decoded to ``sign(c)·2^(|c|−1)``."""
    codes = read(mem, d.b, (1, d.n, d.k))[0]
    if not d.pot_addr:
        return codes
    pot = _table(mem, d.pot_addr, d.n, np.int8).bool()
    mag = codes.abs()
    values = torch.where(mag > 0, codes.sign() * (1 << (mag - 1).clamp(min=0)), 0)
    return torch.where(pot[:, None], values, codes)


def _gemm(mem: np.ndarray, d: Descriptor) -> None:
    a = read(mem, d.a, (d.repeat, d.m, d.k))
    if d.has(F_WEIGHT):
        b = _weights(mem, d)[None]
    elif d.has(F_B_KMAJOR):
        b = read(mem, d.b, (d.repeat, d.k, d.n)).transpose(1, 2)
    else:
        b = read(mem, d.b, (d.repeat, d.n, d.k))
    acc = int_matmul(a, b.transpose(1, 2))
    if d.bias_addr:
        acc = acc + _table(mem, d.bias_addr, d.n, np.int32)
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


def _nonlinear(mem: np.ndarray, d: Descriptor) -> None:
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
        if d.opcode == OPCODES["gemm"]:
            _gemm(mem, d)
        else:
            _nonlinear(mem, d)
    return len(ops)
