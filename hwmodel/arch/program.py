"""The accelerator's program: one fixed-size descriptor per op of the compiled network, as the
layer sequencer reads it from DRAM, and the layout of the DRAM image it works in.

A program is ``PROGRAM_MAGIC`` (header, :data:`HEADER_BYTES`) followed by ``count`` descriptors of
:data:`DESCRIPTOR_BYTES` each, little-endian; :data:`FIELDS` is the one table of a descriptor's
fields (name, ``struct`` code), in order, so the encoder here and the sequencer's decoder (byte
offsets: :func:`field_offsets`) read the same layout. Every address is a byte address in DRAM;
strides count elements of the operand's width.

Op codes (:data:`OPCODES`), one per workload op (:class:`hwmodel.target.workload.Workload`):

* ``gemm``: ``C[h] = A[h]·B[h]`` for ``h < repeat`` (``m × k`` times ``k × n``), int32 accumulators
  plus the bias (int32, one per output channel), then the epilogue: a dyadic rescale per channel
  (``table_len = n``) or per tensor (``1``; tables ``mult`` int32, ``shift`` uint8, ``offset``
  int64 added before the shift, per channel or per element with :data:`F_OFFSET_PER_ROW`),
  clamped to ``[lo, hi]`` and written to C; with :data:`F_RESIDUAL`, the rescaled branch is
  clamped, the residual ``R`` rescaled per tensor (``skip_mult``, ``skip_shift``), clamped, and
  the two added and clamped again (``lo``/``hi``); with :data:`F_RAW`, the accumulators are
  written as they are (int32). Up to three output *segments* of ``seg_cols`` columns each go to
  operands ``c``, ``c1``, ``c2`` with their own clamps (``qkv``: Q, K, V). B holds weight codes
  (``F_WEIGHT``; PoT channels marked in the uint8 table ``pot``: code ``c`` is
  ``sign(c)·2^(|c|−1)``) or activations; it is read ``n``-major (row ``j`` holds the ``k``
  values of output column ``j``, as a weight matrix or Kᵀ) or, with :data:`F_B_KMAJOR`,
  ``k``-major (row ``i`` holds the ``n`` values of depth ``i``, as V). :data:`F_TRANSPOSED`: the
  engine runs the matmul as Cᵀ = Bᵀ·Aᵀ (same results). ``tm``, ``tn``, ``tk``: the tiles.
  How the tile controller schedules it (:mod:`hwmodel.arch.controller`, the model's per-layer
  ``nl_mode``, ``deferred``, ``wait``/``wait_index``; results unchanged): ``nl_mode`` (index in
  :data:`~hwmodel.arch.controller.NL_MODES`) hands its results to the next descriptor's op (the
  non-linear successor) as the GEMM finishes them; with :data:`F_DEFER` that op's last job runs
  beside the next GEMM; ``wait`` (0 none, else 1 + index in
  :data:`~hwmodel.arch.controller.WAITS`: 1 by m tile, 2 by head) and ``wait_idx`` (d) make
  this GEMM, the consumer of such a pending job, hold the transfer that loads group d's first
  tile until the job is over. Non-linear descriptors leave the three at 0.
* ``layernorm``, ``softmax``, ``gelu``: the integer kernel ``variant`` (``0`` poly, ``1`` shift,
  :data:`hwmodel.arch.intops.VARIANTS`) with formats ``in_bits``/``in_frac``/``out_bits``/
  ``out_frac`` row-wise over ``m`` rows of ``n`` (input clamped to ``in_bits`` first), then the
  epilogue rescale (tables as above; LayerNorm: γ and β per channel) to ``[lo, hi]``; softmax
  with :data:`F_LOG2`: the log2 quantizer of ``bits`` instead of the rescale.
* ``end``: the program is over.

An operand is ``(addr, row_stride, head_stride, bits, signed)``: codes are **bit-packed**, as the
model prices transfers (``bits / 8`` bytes an element): element ``(h, r, c)`` occupies the
``bits`` bits from bit ``8·addr + (h·head_stride + r·row_stride + c)·bits`` of DRAM, read as a
little-endian bit stream (bit j of byte a is stream bit ``8a + j``), two's complement when
``signed``. :func:`read_operand` / :func:`write_operand` are that addressing on a DRAM image,
:func:`pack_codes` the stream of a whole tensor.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from hwmodel.arch.controller import NL_MODES, WAITS

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

#: The first bytes of a program: magic, version, descriptor count, descriptor size.
PROGRAM_MAGIC = b"CDSGPROG"
#: 2: the GEMM's schedule (``nl_mode``, ``wait``, ``wait_idx``, :data:`F_DEFER`) added.
PROGRAM_VERSION = 2
HEADER_FORMAT = "<8sHHI"
HEADER_BYTES = 64
#: Every DRAM region starts on this boundary (one 512-bit AXI beat).
ALIGN_BYTES = 64

OPCODES: Mapping[str, int] = {"end": 0, "gemm": 1, "layernorm": 2, "softmax": 3, "gelu": 4}
OPNAMES: Mapping[int, str] = {v: k for k, v in OPCODES.items()}

F_WEIGHT = 1 << 0
F_B_KMAJOR = 1 << 1
F_TRANSPOSED = 1 << 2
F_RESIDUAL = 1 << 3
F_OFFSET_PER_ROW = 1 << 4
F_RAW = 1 << 5
F_LOG2 = 1 << 6
F_DEFER = 1 << 7
#: A GEMM descriptor's ``wait`` codes: 0 no wait, else 1 + the index in
#: :data:`~hwmodel.arch.controller.WAITS` (the per-layer table's ``wait`` names, ``none`` first).
WAIT_CODES: tuple[str, ...] = ("none", *WAITS)
FLAG_NAMES: Mapping[int, str] = {
    F_WEIGHT: "weight",
    F_B_KMAJOR: "b_kmajor",
    F_TRANSPOSED: "transposed",
    F_RESIDUAL: "residual",
    F_OFFSET_PER_ROW: "offset_per_row",
    F_RAW: "raw",
    F_LOG2: "log2",
    F_DEFER: "deferred",
}
#: Output segments of one GEMM (qkv's Q, K and V).
MAX_SEGMENTS = 3
OPERANDS = ("a", "b", "c", "c1", "c2", "r")
#: Bits of a DRAM byte address (the descriptors' ``I`` fields; the AXI ports' ``a?addr``).
ADDR_BITS = 32
#: Widest code an operand holds.
MAX_ELEMENT_BITS = 64


@dataclass(frozen=True)
class Operand:
    """Where a tensor operand lies in DRAM (the module docstring's addressing; ``bits`` 0: none)."""

    addr: int = 0
    row_stride: int = 0
    head_stride: int = 0
    bits: int = 0
    signed: int = 1


_OPERAND_FIELDS = (("addr", "I"), ("row_stride", "I"), ("head_stride", "I"), ("bits", "B"), ("signed", "B"))

#: A descriptor's fields in order (name, ``struct`` code); operands expand to ``<op>_<field>``.
FIELDS: tuple[tuple[str, str], ...] = (
    ("opcode", "B"),
    ("variant", "B"),
    ("flags", "H"),
    ("m", "I"),
    ("n", "I"),
    ("k", "I"),
    ("repeat", "H"),
    ("segments", "B"),
    ("in_bits", "B"),
    ("in_frac", "B"),
    ("out_bits", "B"),
    ("out_frac", "B"),
    ("bits", "B"),
    ("tm", "H"),
    ("tn", "H"),
    ("tk", "H"),
    ("seg_cols", "I"),
    *((f"{op}_{name}", code) for op in OPERANDS for name, code in _OPERAND_FIELDS),
    ("bias_addr", "I"),
    ("pot_addr", "I"),
    ("mult_addr", "I"),
    ("shift_addr", "I"),
    ("offset_addr", "I"),
    ("table_len", "I"),
    ("skip_mult", "i"),
    ("skip_shift", "B"),
    ("lo", "i"),
    ("hi", "i"),
    ("lo1", "i"),
    ("hi1", "i"),
    ("lo2", "i"),
    ("hi2", "i"),
    ("nl_mode", "B"),
    ("wait", "B"),
    ("wait_idx", "I"),
)
_FORMAT = "<" + "".join(code for _, code in FIELDS)
#: Bytes of one descriptor: the fields, packed, padded to a multiple of :data:`ALIGN_BYTES`.
DESCRIPTOR_BYTES = -(-struct.calcsize(_FORMAT) // ALIGN_BYTES) * ALIGN_BYTES


def field_offsets() -> dict[str, tuple[int, int]]:
    """Each field's (byte offset, bytes) in a descriptor (what the sequencer's decoder slices)."""
    out: dict[str, tuple[int, int]] = {}
    at = 0
    for name, code in FIELDS:
        size = struct.calcsize("<" + code)
        out[name] = (at, size)
        at += size
    return out


@dataclass(frozen=True)
class Descriptor:
    """One op of the program (fields as :data:`FIELDS`; unused ones are 0). ``name`` is the
    workload op's name (not encoded: ``program.json`` carries it)."""

    name: str
    opcode: int
    variant: int = 0
    flags: int = 0
    m: int = 0
    n: int = 0
    k: int = 0
    repeat: int = 1
    segments: int = 1
    in_bits: int = 0
    in_frac: int = 0
    out_bits: int = 0
    out_frac: int = 0
    bits: int = 0
    tm: int = 0
    tn: int = 0
    tk: int = 0
    seg_cols: int = 0
    a: Operand = Operand()
    b: Operand = Operand()
    c: Operand = Operand()
    c1: Operand = Operand()
    c2: Operand = Operand()
    r: Operand = Operand()
    bias_addr: int = 0
    pot_addr: int = 0
    mult_addr: int = 0
    shift_addr: int = 0
    offset_addr: int = 0
    table_len: int = 0
    skip_mult: int = 0
    skip_shift: int = 0
    lo: int = 0
    hi: int = 0
    lo1: int = 0
    hi1: int = 0
    lo2: int = 0
    hi2: int = 0
    nl_mode: int = 0
    wait: int = 0
    wait_idx: int = 0

    @property
    def kind(self) -> str:
        return OPNAMES[self.opcode]

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def output(self, segment: int) -> tuple[Operand, int, int]:
        """Output segment ``segment``'s operand and clamp ``(lo, hi)``."""
        return (
            (self.c, self.lo, self.hi),
            (self.c1, self.lo1, self.hi1),
            (self.c2, self.lo2, self.hi2),
        )[segment]

    def values(self) -> list[int]:
        """The encoded fields' values in :data:`FIELDS` order."""
        out: list[int] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            if isinstance(value, Operand):
                out += [getattr(value, name) for name, _ in _OPERAND_FIELDS]
            else:
                out.append(int(value))
        return out

    def encode(self) -> bytes:
        return struct.pack(_FORMAT, *self.values()).ljust(DESCRIPTOR_BYTES, b"\0")

    @classmethod
    def decode(cls, raw: bytes, name: str = "") -> Descriptor:
        values = iter(struct.unpack_from(_FORMAT, raw))
        kwargs: dict[str, Any] = {"name": name}
        for f in fields(cls):
            if f.name == "name":
                continue
            if f.name in OPERANDS:
                kwargs[f.name] = Operand(*(next(values) for _ in _OPERAND_FIELDS))
            else:
                kwargs[f.name] = next(values)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The readable form (``program.json``): op kind and flag names, the fields in use;
        ``nl_mode`` and ``wait`` by name (a code outside the tables as its number), ``wait_idx``
        with its ``wait``."""
        out: dict[str, Any] = {"name": self.name, "op": self.kind}
        flags = [name for bit, name in FLAG_NAMES.items() if self.flags & bit]
        if flags:
            out["flags"] = flags
        names = {"nl_mode": NL_MODES, "wait": WAIT_CODES}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "opcode", "flags"):
                continue
            if isinstance(value, Operand):
                if value.bits:
                    out[f.name] = {k: getattr(value, k) for k, _ in _OPERAND_FIELDS}
            elif f.name in names and value:
                table = names[f.name]
                out[f.name] = table[value] if value < len(table) else value
            elif value or (f.name == "wait_idx" and self.wait):
                out[f.name] = value
        return out

    def schedule(self) -> tuple[str, bool, tuple[str, int] | None]:
        """The GEMM's schedule: its ``nl_mode`` (a name of
        :data:`~hwmodel.arch.controller.NL_MODES`), whether its successor's last job is deferred
        and the group that waits for a pending job (a :data:`~hwmodel.arch.controller.WAITS`
        name and d; None: no wait) — ``ValueError`` for a code outside the tables."""
        if self.nl_mode >= len(NL_MODES) or self.wait >= len(WAIT_CODES):
            raise ValueError(f"{self.name}: nl_mode {self.nl_mode} / wait {self.wait} outside the tables")
        wait = (WAIT_CODES[self.wait], self.wait_idx) if self.wait else None
        return NL_MODES[self.nl_mode], self.has(F_DEFER), wait


def encode_program(descriptors: list[Descriptor]) -> bytes:
    """Header and descriptors (an ``end`` descriptor is appended)."""
    ops = [*descriptors, Descriptor("end", OPCODES["end"])]
    header = struct.pack(HEADER_FORMAT, PROGRAM_MAGIC, PROGRAM_VERSION, DESCRIPTOR_BYTES, len(ops))
    return header.ljust(HEADER_BYTES, b"\0") + b"".join(d.encode() for d in ops)


def decode_program(raw: bytes | memoryview) -> list[Descriptor]:
    """The descriptors of an encoded program up to its ``end`` (``ValueError`` if it is not one)."""
    data = bytes(raw[:HEADER_BYTES])
    if len(data) < HEADER_BYTES:
        raise ValueError("not a codesign program: shorter than its header")
    magic, version, size, count = struct.unpack_from(HEADER_FORMAT, data)
    if magic != PROGRAM_MAGIC:
        raise ValueError("not a codesign program: bad magic")
    if version != PROGRAM_VERSION or size != DESCRIPTOR_BYTES:
        raise ValueError(
            f"program version {version} / descriptor size {size}: this build reads "
            f"version {PROGRAM_VERSION} / {DESCRIPTOR_BYTES} bytes"
        )
    out: list[Descriptor] = []
    for i in range(count):
        at = HEADER_BYTES + i * DESCRIPTOR_BYTES
        chunk = bytes(raw[at : at + DESCRIPTOR_BYTES])
        if len(chunk) < DESCRIPTOR_BYTES:
            raise ValueError(f"program truncated at descriptor {i} of {count}")
        d = Descriptor.decode(chunk)
        if d.opcode not in OPNAMES:
            raise ValueError(f"descriptor {i}: unknown op code {d.opcode}")
        if d.opcode == OPCODES["end"]:
            return out
        out.append(d)
    raise ValueError("program has no end descriptor")


def program_bytes(count: int) -> int:
    """Bytes of an encoded program of ``count`` descriptors (its ``end`` included)."""
    return HEADER_BYTES + (count + 1) * DESCRIPTOR_BYTES


def packed_bytes(count: int, bits: int) -> int:
    """Bytes of ``count`` codes of ``bits`` packed."""
    return -(-count * bits // 8)


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= MAX_ELEMENT_BITS:
        raise ValueError(f"an operand's codes have 1 … {MAX_ELEMENT_BITS} bits, not {bits}")


def _mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1)


def _span(bits: int) -> int:
    """Bytes one element may touch: its bits from any bit offset of its first byte (a multiple
    of 8 is always byte aligned)."""
    return bits // 8 if bits % 8 == 0 else (7 + bits + 7) // 8


def _top(raw: npt.NDArray[np.uint64], shift: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The bits of ``raw << shift`` above bit 63 (0 where the shift is 0)."""
    back = np.where(shift > 0, np.uint64(64) - shift, np.uint64(0))
    return np.where(shift > 0, raw >> (back % np.uint64(64)), np.uint64(0))


def pack_codes(values: npt.ArrayLike, bits: int) -> U8:
    """The codes ``values`` (any shape, row-major) as a packed little-endian bit stream (the
    last byte padded with zeros); values outside ``bits`` bits are refused (``ValueError``)."""
    _check_bits(bits)
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size and (int(v.min()) < -(1 << (bits - 1)) or int(v.max()) >= 1 << bits):
        raise ValueError(f"codes outside {bits} bits")
    stream = np.zeros(packed_bytes(v.size, bits), dtype=np.uint8)
    _scatter(stream, np.arange(v.size, dtype=np.int64) * bits, v.astype(np.uint64) & _mask(bits), bits)
    return stream


def _positions(op: Operand, shape: tuple[int, int, int]) -> I64:
    """The first stream bit of each element of ``op`` over ``shape`` (heads, rows, cols)."""
    h, r, c = (np.arange(n, dtype=np.int64) for n in shape)
    index = h[:, None, None] * op.head_stride + r[None, :, None] * op.row_stride + c[None, None, :]
    return 8 * op.addr + index * op.bits


def _gather(mem: U8, positions: I64, bits: int) -> npt.NDArray[np.uint64]:
    """The ``bits`` bits at each position (not yet masked above them)."""
    first = positions // 8
    shift = (positions % 8).astype(np.uint64)
    span = _span(bits)
    word = np.zeros(positions.shape, dtype=np.uint64)
    for i in range(min(span, 8)):
        word |= mem[np.minimum(first + i, mem.size - 1)].astype(np.uint64) << np.uint64(8 * i)
    out = word >> shift
    if span > 8:  # a code of more than 57 bits off a byte boundary: its top bits are in a ninth byte
        ninth = mem[np.minimum(first + 8, mem.size - 1)].astype(np.uint64)
        out |= np.where(shift > 0, ninth << ((np.uint64(64) - shift) % np.uint64(64)), np.uint64(0))
    return out


def _scatter(mem: U8, positions: I64, raw: npt.NDArray[np.uint64], bits: int) -> None:
    """Write the masked codes ``raw`` at ``positions``: per byte an element touches, clear its
    bits there, then set them (``ufunc.at``: elements that share a byte each keep their bits)."""
    first = positions.reshape(-1) // 8
    shift = (positions.reshape(-1) % 8).astype(np.uint64)
    raw = raw.reshape(-1)
    mask = np.full(raw.shape, _mask(bits), dtype=np.uint64)
    for i in range(_span(bits)):
        if i < 8:
            lo = np.uint64(8 * i)
            vb, mb = ((raw << shift) >> lo), ((mask << shift) >> lo)
        else:  # the ninth byte: what the shift pushed above bit 63
            vb, mb = _top(raw, shift), _top(mask, shift)
        vb8 = (vb & np.uint64(0xFF)).astype(np.uint8)
        mb8 = (mb & np.uint64(0xFF)).astype(np.uint8)
        idx = first + i
        keep = idx < mem.size  # the padding byte past a stream's end holds no bits of a code
        np.bitwise_and.at(mem, idx[keep], ~mb8[keep])
        np.bitwise_or.at(mem, idx[keep], vb8[keep])


def _in_image(mem: U8, op: Operand, shape: tuple[int, int, int]) -> I64:
    _check_bits(op.bits)
    if min(shape) <= 0:
        raise IndexError(f"operand at {op.addr:#x}: empty shape {shape}")
    positions = _positions(op, shape)
    last = int(positions.max()) + op.bits
    if int(positions.min()) < 0 or -(-last // 8) > mem.size:
        raise IndexError(
            f"operand at {op.addr:#x} reaches byte {-(-last // 8)}, outside the {mem.size}-byte image"
        )
    return positions


def read_operand(mem: U8, op: Operand, shape: tuple[int, int, int]) -> I64:
    """Operand ``op``'s codes over ``shape`` (heads, rows, cols), int64 (``IndexError`` outside
    the image)."""
    positions = _in_image(mem, op, shape)
    values = (_gather(mem, positions, op.bits) & _mask(op.bits)).astype(np.int64)
    if op.signed and op.bits < 64:
        values -= (values >> (op.bits - 1) & 1) << op.bits
    return values


def write_operand(mem: U8, op: Operand, values: npt.ArrayLike) -> None:
    """Store codes ``values`` (heads, rows, cols) at ``op`` (``ValueError`` where one does not fit
    its bits, ``IndexError`` outside the image)."""
    v = np.asarray(values, dtype=np.int64)
    shape = (int(v.shape[0]), int(v.shape[1]), int(v.shape[2]))
    positions = _in_image(mem, op, shape)
    lo, hi = (-(1 << (op.bits - 1)), (1 << (op.bits - 1)) - 1) if op.signed else (0, (1 << op.bits) - 1)
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise ValueError(f"values for the operand at {op.addr:#x} do not fit {op.bits} bits")
    _scatter(mem, positions, v.astype(np.uint64) & _mask(op.bits), op.bits)


#: The AXI4-Lite register map of the accelerator (byte offsets of 32-bit registers): ``CTRL``
#: bit 0 starts the program at ``PROG_BASE`` (write 1 while idle); ``STATUS`` bit 0 done (since the
#: last start), bit 1 idle, bit 2 error (a fault stopped the program); ``OPS_DONE``: descriptors
#: finished in this run; ``CYCLES_LO``/``CYCLES_HI``: clock cycles from start to done.
REGISTERS: Mapping[str, int] = {
    "CTRL": 0x00,
    "STATUS": 0x04,
    "PROG_BASE_LO": 0x08,
    "PROG_BASE_HI": 0x0C,
    "OPS_DONE": 0x10,
    "CYCLES_LO": 0x14,
    "CYCLES_HI": 0x18,
}
CTRL_START = 1 << 0
STATUS_DONE = 1 << 0
STATUS_IDLE = 1 << 1
STATUS_ERROR = 1 << 2


@dataclass(frozen=True)
class RunRegisters:
    """What a run leaves in the read-only registers: ``STATUS``, ``OPS_DONE``, ``CYCLES``."""

    status: int
    ops_done: int
    cycles: int


class RegisterDevice:
    """An accelerator as its host driver sees it (PYNQ-style): the DRAM image :attr:`mem` and
    the register map :data:`REGISTERS` with the sequencer's semantics — ``PROG_BASE_LO``/``HI``
    written and read back, a ``CTRL`` write with :data:`CTRL_START` runs the program at
    ``PROG_BASE`` (:meth:`run`, which subclasses provide), ``STATUS``, ``OPS_DONE`` and
    ``CYCLES_LO``/``HI`` read what the last run left; writes to those are ignored, an offset
    outside the map is a ``ValueError``."""

    def __init__(self, dram_bytes: int) -> None:
        self.mem = np.zeros(dram_bytes, dtype=np.uint8)
        self.regs = dict.fromkeys(REGISTERS.values(), 0)
        self.regs[REGISTERS["STATUS"]] = STATUS_IDLE

    def run(self, program_base: int) -> RunRegisters:
        """Run the program at ``program_base`` on :attr:`mem`."""
        raise NotImplementedError

    def write_reg(self, offset: int, value: int) -> None:
        if offset not in self.regs:
            raise ValueError(f"no register at {offset:#x}")
        if offset == REGISTERS["CTRL"] and value & CTRL_START:
            base = self.regs[REGISTERS["PROG_BASE_LO"]] | self.regs[REGISTERS["PROG_BASE_HI"]] << 32
            out = self.run(base)
            self.regs[REGISTERS["STATUS"]] = out.status
            self.regs[REGISTERS["OPS_DONE"]] = out.ops_done & 0xFFFFFFFF
            self.regs[REGISTERS["CYCLES_LO"]] = out.cycles & 0xFFFFFFFF
            self.regs[REGISTERS["CYCLES_HI"]] = out.cycles >> 32 & 0xFFFFFFFF
        elif offset in (REGISTERS["PROG_BASE_LO"], REGISTERS["PROG_BASE_HI"]):
            self.regs[offset] = value & 0xFFFFFFFF

    def read_reg(self, offset: int) -> int:
        if offset not in self.regs:
            raise ValueError(f"no register at {offset:#x}")
        return self.regs[offset]
