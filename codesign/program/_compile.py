"""Compile a design's integer program (:class:`codesign.quant.IntegerViT`) into the accelerator's
program (:mod:`hwmodel.arch.program`) and the DRAM image it runs in.

DRAM, from address 0 (every region on a 64-byte boundary):

* ``program``: the encoded descriptors (the sequencer's program base is 0);
* parameters (role ``param``, ``params.bin``): per GEMM its weight codes at the layer's width
  (``n``-major, one row per output channel; a PoT channel holds the engine's PoT code, marked in
  the one-bit table ``<op>.pot``), the 32-bit bias, and per rescale its tables (``<op>.mult``
  32 bits, ``<op>.shift`` 6, ``<op>.offset`` 62, as the requantization lanes take them); the
  first residual buffer ``x0`` (its row 0 is the class token's constant codes, the patch
  embedding writes the rest);
* ``input``: the patch embedding's rows of one image (``patches × C·ph·pw`` codes), written by the
  host (:class:`codesign.program.driver.Accelerator`: the quantization and patch split of
  :class:`~codesign.quant.IntegerViT`);
* scratch (role ``scratch``): the activations between ops (the 24-bit residual stream, the 16-bit
  non-linear inputs, the GEMMs' input codes at each consumer's width), sized for the widest use;
* ``logits``: the head's 32-bit accumulators, which the host multiplies by ``logit_unit``.

Every tensor is bit-packed at its codes' width (:mod:`hwmodel.arch.program`), so its bytes are
the ones the model prices, up to the padding below.

**Write alignment.** The tile DMA's writer never reads DRAM, so each window row it writes must
start and end on a byte (:func:`hwmodel.arch.dma.check_write_alignment`). The accelerator writes an
op's output as windows: a GEMM each output tile (``tm`` rows × ``tn`` columns of C at column
multiples of ``tn``; a transposed GEMM's Cᵀ tiles are the same windows of C), cut at its segments'
edges (qkv's Q, K, V: ``seg_cols`` columns each, every segment its own operand) and per head
(``repeat``; attn.sv's heads lie side by side in a row, ``head_stride`` columns apart); a
non-linear op whole rows (or groups of them), GELU the tiles of the GEMM before it where that GEMM
hands it each tile (``nl_mode`` ``tile``). With ``granule(bits) = 8 / gcd(bits, 8)`` codes (the
fewest that fill whole bytes), every tensor the accelerator writes is laid out so that

1. its **row stride is a multiple of the granule** of every width stored in it (its head stride,
   ``rows × row_stride``, too): every row starts on a byte; the ``row_stride − cols`` codes past a
   row's last (fewer than a granule) are padding that no op reads;
2. its **codes are stored at the narrowest width ≥ theirs at which every window edge inside a row
   is on a byte** — tile edges ``j·tn`` (from their segment's first column), heads' first columns
   ``h·head_stride``: with ``e`` the gcd of those edges, the width rounded up to a multiple of
   ``granule(e)``. The descriptor's ``in_bits`` / ``bits`` stay the codes' width, the operand's
   ``bits`` is the stored one. With tiles and heads of a multiple of 8 columns (DeiT's heads of 64)
   nothing is widened; the tiny ViT's heads of 12 columns store 5- and 7-bit attention outputs at
   6 and 8 bits;
3. hence every window row starts on a byte, and one that ends inside a byte (``cols·bits`` not a
   multiple of 8) ends at its row's last column: **the writer is given the window with its
   columns rounded up to a multiple of the granule** (the byte finished with padding codes), which
   passes :func:`~hwmodel.arch.dma.check_write_alignment` and writes no code of another window
   (``tests/test_program.py`` checks every window of compiled programs).

E.g. the tiny ViT's W8A6 softmax output (17 codes × 6 bits: 102-bit rows) has rows of 20 codes
(15 bytes); DeiT's 197-token rows are 198 codes at 4 or 12 bits, 200 at the other widths but 8 and
16. The regions (and ``program.json``'s ``regions``: ``row_stride``, ``bits``, ``bytes``) hold the
padded rows. The host's input rows and the parameters are not written by the accelerator and stay
dense.

The program has one descriptor per op of the workload (:class:`hwmodel.target.workload.Workload`,
same names and order), with the design's tiles and orientation when a
:class:`~hwmodel.model.evaluation.DesignReport` is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from codesign.atomic import write_atomic, write_text_atomic
from codesign.errors import UserError
from codesign.quant._integer import (
    RESIDUAL_BITS,
    IntegerBlock,
    IntegerLayerNorm,
    IntegerLinear,
    IntegerViT,
    Rescale,
    integer_model,
)
from hwmodel.arch.controller import NL_MODES
from hwmodel.arch.dyadic import INPUT_BITS, MULT_BITS, OFFSET_BITS, SHIFT_BITS
from hwmodel.arch.engine import encode_pot
from hwmodel.arch.intops import NONLINEAR_BITS, VARIANTS, IntOp, IntSpec
from hwmodel.arch.program import (
    ALIGN_BYTES,
    F_B_KMAJOR,
    F_DEFER,
    F_LOG2,
    F_OFFSET_PER_ROW,
    F_RAW,
    F_RESIDUAL,
    F_TRANSPOSED,
    F_WEIGHT,
    OPCODES,
    WAIT_CODES,
    Descriptor,
    Operand,
    encode_program,
    pack_codes,
    packed_bytes,
    program_bytes,
)
from hwmodel.model.evaluation import DesignReport
from hwmodel.target.vit import BLOCK_GEMMS, HEAD, PATCH_EMBED, block_layer

I64 = npt.NDArray[np.int64]
ROLES = ("program", "param", "input", "scratch", "output")
#: Width of a bias and of the head's accumulators (an int32 accumulator).
BIAS_BITS = INPUT_BITS + 1


def granule(bits: int) -> int:
    """The fewest codes of ``bits`` that fill whole bytes: ``8 / gcd(bits, 8)``."""
    return 8 // math.gcd(bits, 8)


def _round_up(n: int, q: int) -> int:
    return -(-n // q) * q


def stored_bits(bits: int, edges: Iterable[int]) -> int:
    """The narrowest width ≥ ``bits`` at which every column edge in ``edges`` (codes from a row's
    start) lies on a byte (module docstring, rule 2)."""
    e = 0
    for edge in edges:
        e = math.gcd(e, edge)
    return bits if e == 0 else _round_up(bits, granule(e))


def _tile_edges(n: int, tn: int, first: int = 0, cols: int | None = None) -> list[int]:
    """The edges of tiles of ``tn`` columns over ``n`` GEMM columns strictly inside the ``cols``
    columns from GEMM column ``first`` (a segment), relative to ``first``."""
    cols = n - first if cols is None else cols
    return [c - first for c in range(tn, n, tn) if first < c < first + cols]


@dataclass(frozen=True)
class Region:
    """A named area of DRAM: byte address, shape, bits of its widest codes, whether they are
    signed, role (:data:`ROLES`), and the codes from one row (last axis) to the next
    (``stride``; 0: the last axis, rows dense)."""

    name: str
    addr: int
    shape: tuple[int, ...]
    bits: int
    signed: bool
    role: str
    stride: int = 0

    @property
    def row_stride(self) -> int:
        """Codes from one row to the next: the last axis, padded (module docstring, rule 1)."""
        return self.stride or self.shape[-1]

    @property
    def head_stride(self) -> int:
        """Codes from one matrix (of the last two axes) to the next."""
        return self.row_stride * (self.shape[-2] if len(self.shape) > 1 else 1)

    @property
    def nbytes(self) -> int:
        rows = int(np.prod(self.shape[:-1], dtype=np.int64))
        return packed_bytes(rows * self.row_stride, self.bits)

    @property
    def end(self) -> int:
        return self.addr + self.nbytes

    def operand(
        self,
        bits: int | None = None,
        signed: bool | None = None,
        row_stride: int | None = None,
        head_stride: int = 0,
    ) -> Operand:
        """The region as an operand of ``bits`` (default: the region's; at most those) codes, rows
        :attr:`row_stride` apart unless ``row_stride``."""
        b = self.bits if bits is None else bits
        if b > self.bits:
            raise ValueError(f"{self.name}: {b}-bit codes in a region of {self.bits}-bit ones")
        stride = self.row_stride if row_stride is None else row_stride
        return Operand(self.addr, stride, head_stride, b, int(self.signed if signed is None else signed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "addr": self.addr,
            "bytes": self.nbytes,
            "shape": list(self.shape),
            "row_stride": self.row_stride,
            "bits": self.bits,
            "signed": self.signed,
            "role": self.role,
        }


def _align(n: int) -> int:
    return -(-n // ALIGN_BYTES) * ALIGN_BYTES


@dataclass(frozen=True)
class Program:
    """A compiled network: descriptors, DRAM regions, the parameters' contents and the host's
    boundary (input quantization, patch size, the logits' unit)."""

    model: str
    descriptors: tuple[Descriptor, ...]
    regions: tuple[Region, ...]
    params: Mapping[str, np.ndarray] = field(repr=False)
    input_scale: float
    input_bits: int
    patch: tuple[int, int]
    logit_unit: npt.NDArray[np.float64] = field(repr=False)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def dram_bytes(self) -> int:
        return _align(max(r.end for r in self.regions))

    @property
    def params_span(self) -> tuple[int, int]:
        """The byte range ``[start, end)`` that ``params.bin`` holds (every parameter region)."""
        params = [r for r in self.regions if r.role == "param"]
        return min(r.addr for r in params), max(r.end for r in params)

    def encoded(self) -> bytes:
        return encode_program(list(self.descriptors))

    def params_image(self) -> np.ndarray:
        """The bytes of :attr:`params_span` (``params.bin``)."""
        start, end = self.params_span
        out = np.zeros(end - start, dtype=np.uint8)
        for r in self.regions:
            if r.role == "param":
                data = self.params[r.name]
                out[r.addr - start : r.addr - start + data.size] = data
        return out

    def image(self) -> np.ndarray:
        """A DRAM image (uint8, :attr:`dram_bytes`) holding the program and the parameters."""
        mem = np.zeros(self.dram_bytes, dtype=np.uint8)
        prog = np.frombuffer(self.encoded(), dtype=np.uint8)
        mem[: prog.size] = prog
        start, _ = self.params_span
        params = self.params_image()
        mem[start : start + params.size] = params
        return mem

    def to_dict(self) -> dict[str, Any]:
        """``program.json``: the readable program (ops with their fields, the regions)."""
        start, end = self.params_span
        return {
            "model": self.model,
            "program_base": self.region("program").addr,
            "dram_bytes": self.dram_bytes,
            "params": {"addr": start, "bytes": end - start},
            "input": {
                "region": "input",
                "scale": self.input_scale,
                "bits": self.input_bits,
                "patch": list(self.patch),
            },
            "output": {"region": "logits", "unit": [float(u) for u in self.logit_unit]},
            "ops": [d.to_dict() for d in self.descriptors],
            "regions": [r.to_dict() for r in self.regions],
        }


PROGRAM_FILE = "program.bin"
PARAMS_FILE = "params.bin"
PROGRAM_JSON = "program.json"


def write_program(folder: Path, program: Program) -> list[Path]:
    """``program.bin``, ``params.bin`` and ``program.json`` into ``folder`` (atomically each)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_atomic(folder / PROGRAM_FILE, lambda tmp: tmp.write_bytes(program.encoded())),
        write_atomic(folder / PARAMS_FILE, lambda tmp: tmp.write_bytes(program.params_image().tobytes())),
        write_text_atomic(folder / PROGRAM_JSON, json.dumps(program.to_dict(), indent=1) + "\n"),
    ]


def export_program(
    folder: Path, qmodel: torch.nn.Module, report: DesignReport | None, model: str
) -> list[Path]:
    """A design's program files into ``folder`` (:func:`write_program`); where the integer program
    cannot run the design, ``program.json`` holds ``{"reason": ...}`` alone (one line)."""
    try:
        program = compile_program(integer_model(qmodel), report, model)
    except UserError as exc:
        return [write_text_atomic(folder / PROGRAM_JSON, json.dumps({"reason": str(exc)}, indent=1) + "\n")]
    return write_program(folder, program)


class _Layout:
    """Allocates regions one after another (64-byte aligned) and keeps the parameters' packed bytes."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.params: dict[str, np.ndarray] = {}
        self.at = 0

    def add(
        self,
        name: str,
        shape: Sequence[int],
        bits: int,
        role: str,
        signed: bool = True,
        widths: Iterable[int] = (),
    ) -> Region:
        """A region; with ``widths`` (the widths it stores), rows padded to a multiple of each one's
        :func:`granule` (an activation the accelerator writes)."""
        dims = tuple(int(s) for s in shape)
        step = math.lcm(1, *(granule(w) for w in widths))
        stride = _round_up(dims[-1], step)
        region = Region(name, self.at, dims, bits, signed, role, stride if stride != dims[-1] else 0)
        self.regions.append(region)
        self.at = _align(region.end)
        return region

    def param(self, name: str, data: torch.Tensor, bits: int, signed: bool = True) -> Region:
        """A parameter region holding ``data``'s codes (``ValueError`` if one does not fit)."""
        region = self.add(name, tuple(data.shape), bits, "param", signed)
        values = data.numpy().astype(np.int64)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if values.size and (int(values.min()) < lo or int(values.max()) > hi):
            raise ValueError(f"{name}: values outside {bits} bits")
        self.params[name] = pack_codes(values, bits)
        return region


def _signed_bits(r: Rescale) -> tuple[int, bool]:
    """The width and signedness of a rescale's output codes."""
    if r.lo < 0:
        return max(int(-r.lo - 1).bit_length(), int(r.hi).bit_length()) + 1, True
    return max(int(r.hi).bit_length(), 1), False


def _tables(lay: _Layout, name: str, rescales: Sequence[Rescale]) -> dict[str, int]:
    """Store the rescales' tables (concatenated along the channels); the descriptor's fields."""
    mult = torch.cat([r.dyadic.multiplier.reshape(-1) for r in rescales])
    shift = torch.cat([r.dyadic.shift.reshape(-1) for r in rescales])
    out = {
        "mult_addr": lay.param(f"{name}.mult", mult, MULT_BITS).addr,
        "shift_addr": lay.param(f"{name}.shift", shift, SHIFT_BITS, signed=False).addr,
        "table_len": int(mult.numel()),
    }
    offsets = [r.offset for r in rescales]
    if any(o is not None for o in offsets):
        if len(rescales) != 1:
            raise ValueError(f"{name}: offsets on a segmented output")
        offset = offsets[0]
        assert offset is not None
        out["offset_addr"] = lay.param(f"{name}.offset", offset, OFFSET_BITS).addr
        if offset.ndim == 2:
            out["flags"] = F_OFFSET_PER_ROW
    return out


def _weights(lay: _Layout, name: str, lin: IntegerLinear) -> dict[str, Any]:
    """Weight codes ``[O, K]`` at the layer's width (a PoT channel's code is the engine's
    ``sign << (b−1) | m``, :func:`hwmodel.arch.engine.encode_pot`, stored as its b bits), the
    one-bit PoT table, the bias."""
    bits = lin.weight_bits
    values = lin.weight_t.t().contiguous()
    if bool(lin.pot.any()):
        pot = torch.from_numpy(encode_pot(values[lin.pot].numpy(), bits))
        values = values.clone()
        values[lin.pot] = pot - ((pot >> (bits - 1)) & 1) * (1 << bits)  # the same b bits, read signed
    out: dict[str, Any] = {
        "b": lay.param(f"{name}.w", values, bits).operand(),
        "bias_addr": lay.param(f"{name}.bias", lin.bias, BIAS_BITS).addr,
        "bits": bits,
    }
    if bool(lin.pot.any()):
        out["pot_addr"] = lay.param(f"{name}.pot", lin.pot.long(), 1, signed=False).addr
    return out


@dataclass(frozen=True)
class _BlockOperands:
    """A block's activations the accelerator writes, as the operands its ops use: LayerNorms'
    outputs, Q/K/V, the scores, probabilities, attention output, fc1's output and GELU's."""

    ln1: Operand
    ln2: Operand
    qkv: tuple[Operand, Operand, Operand]
    s: Operand
    p: Operand
    o: Operand
    h: Operand
    g: Operand


class _Compiler:
    def __init__(self, imodel: IntegerViT, report: DesignReport | None) -> None:
        self.m = imodel
        self.layers = {layer.name: layer for layer in report.layers} if report is not None else {}
        self.lay = _Layout()
        self.ops: list[Descriptor] = []

    def tiles(self, name: str) -> dict[str, int]:
        """GEMM ``name``'s tiles, orientation and schedule as the design's per-layer table has
        them (``nl_mode``, ``deferred`` → :data:`F_DEFER`, ``wait``/``wait_index``; nothing
        without a report)."""
        layer = self.layers.get(name)
        if layer is None:
            return {}
        return {
            "tm": min(layer.tm, layer.m),
            "tn": min(layer.tn, layer.n),
            "tk": min(layer.tk, layer.k),
            "flags": (F_TRANSPOSED if layer.transposed else 0) | (F_DEFER if layer.deferred else 0),
            "nl_mode": NL_MODES.index(layer.nl_mode),
            "wait": WAIT_CODES.index(layer.wait),
            "wait_idx": layer.wait_index,
        }

    def emit(self, name: str, kind: str, parts: Sequence[Mapping[str, Any]]) -> None:
        kwargs: dict[str, Any] = {"flags": 0}
        for part in parts:
            for key, value in part.items():
                kwargs[key] = kwargs[key] | value if key == "flags" else value
        self.ops.append(Descriptor(name, OPCODES[kind], **kwargs))

    def gemm(
        self,
        name: str,
        lin: IntegerLinear,
        a: Operand | Region,
        m: int,
        outputs: Sequence[tuple[Operand, Rescale]],
        residual: tuple[Operand, Rescale] | None = None,
        raw: Operand | None = None,
    ) -> None:
        """A weight GEMM ``m × K`` times ``K × O`` (A: ``a``'s first ``m`` rows; a region's at the
        layer's input width) with its epilogue."""
        n, k = int(lin.weight_t.shape[1]), int(lin.weight_t.shape[0])
        a_op = a.operand(lin.in_bits) if isinstance(a, Region) else a
        parts: list[Mapping[str, Any]] = [
            {"m": m, "n": n, "k": k, "a": a_op, "in_bits": lin.in_bits, "flags": F_WEIGHT},
            _weights(self.lay, name, lin),
            self.tiles(name),
            self.epilogue(name, outputs, residual, raw),
        ]
        self.emit(name, "gemm", parts)

    def epilogue(
        self,
        name: str,
        outputs: Sequence[tuple[Operand, Rescale]],
        residual: tuple[Operand, Rescale] | None = None,
        raw: Operand | None = None,
    ) -> dict[str, Any]:
        if raw is not None:
            return {"c": raw, "flags": F_RAW}
        out: dict[str, Any] = dict(_tables(self.lay, name, [r for _, r in outputs]))
        out["segments"] = len(outputs)
        if len(outputs) > 1:
            out["seg_cols"] = int(outputs[0][1].dyadic.multiplier.numel())
        for i, (operand, rescale) in enumerate(outputs):
            suffix = "" if i == 0 else str(i)
            out[f"c{suffix}"] = operand
            out[f"lo{suffix}"], out[f"hi{suffix}"] = rescale.lo, rescale.hi
        if residual is not None:
            operand, skip = residual
            if skip.dyadic.multiplier.numel() != 1 or skip.offset is not None:
                raise ValueError(f"{name}: the residual's rescale must be one per tensor")
            out["flags"] = out.get("flags", 0) | F_RESIDUAL
            out["r"] = operand
            out["skip_mult"] = int(skip.dyadic.multiplier)
            out["skip_shift"] = int(skip.dyadic.shift)
        return out

    def nonlinear(
        self,
        name: str,
        kind: str,
        op: IntOp,
        spec: IntSpec,
        src: Operand,
        rows: int,
        cols: int,
        dst: Operand,
        out: Rescale | None,
        log2_bits: int = 0,
    ) -> None:
        parts: list[Mapping[str, Any]] = [
            {
                "m": rows,
                "n": cols,
                "a": src,
                "c": dst,
                "variant": VARIANTS.index(op.variant),
                "in_bits": spec.in_bits,
                "in_frac": spec.in_frac,
                "out_bits": spec.out_bits,
                "out_frac": spec.out_frac,
            },
        ]
        if out is None:
            parts.append({"flags": F_LOG2, "bits": log2_bits, "lo": 0, "hi": 1 << spec.out_frac})
        else:
            parts.append(_tables(self.lay, name, [out]))
            parts.append({"lo": out.lo, "hi": out.hi})
        self.emit(name, kind, parts)

    def layernorm(self, name: str, ln: IntegerLayerNorm, src: Region, dst: Operand) -> None:
        rows, cols = src.shape
        self.nonlinear(name, "layernorm", ln.op, ln.spec, src.operand(), rows, cols, dst, ln.out)

    def tn(self, name: str, n: int) -> int:
        """GEMM ``name``'s output tile width (``n``: one tile, without a report)."""
        layer = self.layers.get(name)
        return n if layer is None else min(layer.tn, layer.n)

    def activations(
        self, name: str, shape: Sequence[int], uses: Sequence[tuple[int, bool, Sequence[int]]]
    ) -> list[Operand]:
        """A scratch region the accelerator writes, for ``uses`` (per use: the codes' width, whether
        signed, the window edges inside a row): each use's operand, its codes stored at
        :func:`stored_bits`, rows padded to every stored width's granule (module docstring)."""
        widths = [stored_bits(bits, edges) for bits, _, edges in uses]
        signed = any(sign for _, sign, _ in uses)
        region = self.lay.add(name, shape, max(widths), "scratch", signed, widths)
        return [
            region.operand(w, sign, head_stride=region.head_stride if len(shape) > 2 else 0)
            for w, (_, sign, _) in zip(widths, uses, strict=True)
        ]

    def compile(self) -> Program:
        m, lay = self.m, self.lay
        pe = m.patch_embed
        d = int(pe.weight_t.shape[1])
        k_in = int(pe.weight_t.shape[0])
        blocks: Sequence[IntegerBlock] = list(m.blocks)  # type: ignore[arg-type]
        if not blocks:
            raise UserError("program: the model has no transformer blocks")
        if m.embed.offset is None:
            raise UserError("program: the model has no position embedding")
        patches = int(m.embed.offset.shape[0])  # the patch embedding's rows carry position offsets
        tokens = patches + 1
        heads, hd = blocks[0].heads, blocks[0].head_dim
        hidden = int(blocks[0].fc1.weight_t.shape[1])

        program = lay.add("program", (program_bytes(self.n_ops(len(blocks))),), 8, "program", signed=False)
        x0_init = torch.zeros(tokens, d, dtype=torch.int64)
        x0_init[0] = m.cls_codes
        x0 = lay.param("x0", x0_init, RESIDUAL_BITS)
        inp = lay.add("input", (patches, k_in), pe.in_bits, "input")
        # scratch: the residual stream (two buffers beside x0, and the mid-block one; 24-bit codes
        # start every row on a byte), the rest sized for the widest codes they store; per block
        # each use's operand (its stored width, rows padded: module docstring)
        xs = [lay.add(f"x{i}", (tokens, d), RESIDUAL_BITS, "scratch") for i in (1, 2)]
        xmid = lay.add("xmid", (tokens, d), RESIDUAL_BITS, "scratch")
        layer = [{part: block_layer(i, part) for part in BLOCK_GEMMS} for i in range(len(blocks))]
        ln_ops = self.activations(
            "ln",
            (tokens, d),
            [(*_signed_bits(ln.out), ()) for b in blocks for ln in (b.norm1, b.norm2)]
            + [(*_signed_bits(m.norm.out), ())],
        )
        qkv_tn = [self.tn(names["attn.qkv"], 3 * d) for names in layer]
        qkv_ops = [
            self.activations(
                n,
                (tokens, d),
                [
                    (*_signed_bits(getattr(b, f"to_{n}")), _tile_edges(3 * d, tn, j * d, d))
                    for b, tn in zip(blocks, qkv_tn, strict=True)
                ],
            )
            for j, n in enumerate(("q", "k", "v"))
        ]
        s_ops = self.activations(
            "s",
            (heads, tokens, tokens),
            [
                (NONLINEAR_BITS, True, _tile_edges(tokens, self.tn(names["attn.qk"], tokens)))
                for names in layer
            ],
        )
        p_ops = self.activations(
            "p",
            (heads, tokens, tokens),
            [(b.soft_spec.out_frac + 1 if b.log2 else b.p_bits, False, ()) for b in blocks],
        )
        sv_tn = [self.tn(names["attn.sv"], hd) for names in layer]
        o_ops = self.activations(
            "o",
            (tokens, d),
            [
                (
                    *_signed_bits(b.to_proj),
                    [h * hd + c for h in range(heads) for c in range(0, hd, tn) if h or c],
                )
                for b, tn in zip(blocks, sv_tn, strict=True)
            ],
        )
        fc1_edges = [_tile_edges(hidden, self.tn(names["mlp.fc1"], hidden)) for names in layer]
        h_ops = self.activations("h", (tokens, hidden), [(NONLINEAR_BITS, True, e) for e in fc1_edges])
        g_ops = self.activations(
            "g",
            (tokens, hidden),
            [
                (*_signed_bits(b.from_gelu), e if self.nl_mode(names["mlp.fc1"]) == "tile" else ())
                for b, e, names in zip(blocks, fc1_edges, layer, strict=True)
            ],
        )
        classes = int(m.head.weight_t.shape[1])
        logits = lay.add("logits", (1, classes), BIAS_BITS, "output")

        embed_out = Operand(x0.addr + d * RESIDUAL_BITS // 8, d, 0, RESIDUAL_BITS, 1)  # rows 1 …
        self.gemm(PATCH_EMBED, pe, inp.operand(), patches, [(embed_out, m.embed)])
        x_in = x0
        for i, blk in enumerate(blocks):
            x_out = xs[i % 2]
            acts = _BlockOperands(
                ln1=ln_ops[2 * i],
                ln2=ln_ops[2 * i + 1],
                qkv=(qkv_ops[0][i], qkv_ops[1][i], qkv_ops[2][i]),
                s=s_ops[i],
                p=p_ops[i],
                o=o_ops[i],
                h=h_ops[i],
                g=g_ops[i],
            )
            self.block(i, blk, x_in, xmid, x_out, acts, tokens)
            x_in = x_out
        self.layernorm("norm", m.norm, x_in, ln_ops[-1])
        self.gemm(HEAD, m.head, ln_ops[-1], 1, [], raw=logits.operand())
        descriptors = tuple(self.ops)
        if program_bytes(len(descriptors)) != program.nbytes:
            raise AssertionError("program region sized for another op count")
        return Program(
            model="",
            descriptors=descriptors,
            regions=tuple(lay.regions),
            params=dict(lay.params),
            input_scale=float(pe.in_scale),
            input_bits=pe.in_bits,
            patch=m.patch,
            logit_unit=m.head.acc_unit.numpy().astype(np.float64),
        )

    def nl_mode(self, name: str) -> str:
        """How GEMM ``name`` hands its results to its non-linear successor (``none`` without a report)."""
        layer = self.layers.get(name)
        return "none" if layer is None else layer.nl_mode

    @staticmethod
    def n_ops(depth: int) -> int:
        """Descriptors of a ViT of ``depth`` blocks: patch embedding, 10 per block, norm, head."""
        return 1 + 10 * depth + 2

    def block(
        self,
        i: int,
        blk: IntegerBlock,
        x_in: Region,
        xmid: Region,
        x_out: Region,
        acts: _BlockOperands,
        tokens: int,
    ) -> None:
        heads, hd = blk.heads, blk.head_dim
        q, k, v = acts.qkv
        name = f"blocks.{i}"
        self.layernorm(f"{name}.norm1", blk.norm1, x_in, acts.ln1)
        self.gemm(
            block_layer(i, "attn.qkv"),
            blk.qkv,
            acts.ln1,
            tokens,
            [(q, blk.to_q), (k, blk.to_k), (v, blk.to_v)],
        )
        # Q·Kᵀ per head: A = Q_h (rows of Q, columns h·hd …), B = K_h n-major, C = S_h
        qk = block_layer(i, "attn.qk")
        self.emit(
            qk,
            "gemm",
            [
                {
                    "m": tokens,
                    "n": tokens,
                    "k": hd,
                    "repeat": heads,
                    "in_bits": _signed_bits(blk.to_q)[0],
                    "bits": _signed_bits(blk.to_k)[0],
                    "a": replace(q, head_stride=hd),
                    "b": replace(k, head_stride=hd),
                },
                self.tiles(qk),
                self.epilogue(qk, [(acts.s, blk.to_softmax)]),
            ],
        )
        p_bits = blk.soft_spec.out_frac + 1 if blk.log2 else blk.p_bits
        self.nonlinear(
            f"{name}.attn.softmax",
            "softmax",
            blk.soft_op,
            blk.soft_spec,
            replace(acts.s, head_stride=0),
            heads * tokens,
            tokens,
            replace(acts.p, head_stride=0),
            None if blk.log2 else blk.to_p,
            blk.p_bits,
        )
        sv = block_layer(i, "attn.sv")
        self.emit(
            sv,
            "gemm",
            [
                {
                    "m": tokens,
                    "n": hd,
                    "k": tokens,
                    "repeat": heads,
                    "in_bits": p_bits,
                    "bits": _signed_bits(blk.to_v)[0],
                    "flags": F_B_KMAJOR,
                    "a": acts.p,
                    "b": replace(v, head_stride=hd),
                },
                self.tiles(sv),
                self.epilogue(sv, [(replace(acts.o, head_stride=hd), blk.to_proj)]),
            ],
        )
        self.gemm(
            block_layer(i, "attn.proj"),
            blk.proj,
            acts.o,
            tokens,
            [(xmid.operand(), blk.add1)],
            residual=(x_in.operand(), blk.skip1),
        )
        self.layernorm(f"{name}.norm2", blk.norm2, xmid, acts.ln2)
        self.gemm(block_layer(i, "mlp.fc1"), blk.fc1, acts.ln2, tokens, [(acts.h, blk.to_gelu)])
        self.nonlinear(
            f"{name}.mlp.act",
            "gelu",
            blk.gelu_op,
            blk.gelu_spec,
            acts.h,
            tokens,
            int(blk.fc1.weight_t.shape[1]),
            acts.g,
            blk.from_gelu,
        )
        self.gemm(
            block_layer(i, "mlp.fc2"),
            blk.fc2,
            acts.g,
            tokens,
            [(x_out.operand(), blk.add2)],
            residual=(xmid.operand(), blk.skip2),
        )


def compile_program(imodel: IntegerViT, report: DesignReport | None = None, model: str = "") -> Program:
    """The accelerator program of an integer model (with ``report``: the design's tiles and
    orientations in the GEMM descriptors; ``model``: the name ``program.json`` records)."""
    return replace(_Compiler(imodel, report).compile(), model=model)
