"""Compile a design's integer program (:class:`codesign.quant.IntegerViT`) into the accelerator's
program (:mod:`hwmodel.arch.program`) and the DRAM image it runs in.

DRAM, from address 0 (every region on a 64-byte boundary):

* ``program``: the encoded descriptors (the sequencer's program base is 0);
* parameters (role ``param``, ``params.bin``): per GEMM its weight codes (``n``-major, one row per
  output channel; PoT channels hold their PoT code, marked in ``<op>.pot``), the int32 bias, and
  per rescale its tables (``<op>.mult`` int32, ``<op>.shift`` uint8, ``<op>.offset`` int64); the
  first residual buffer ``x0`` (its row 0 is the class token's constant codes, the patch
  embedding writes the rest);
* ``input``: the patch embedding's rows of one image (``patches × C·ph·pw`` codes), written by the
  host (:meth:`Program.input_codes`: the quantization and patch split of
  :class:`~codesign.quant.IntegerViT`);
* scratch (role ``scratch``): the activations between ops (residual stream int32, 16-bit
  non-linear inputs, the GEMMs' input codes);
* ``logits``: the head's int32 accumulators, which the host multiplies by ``logit_unit``.

The program has one descriptor per op of the workload (:class:`hwmodel.target.workload.Workload`,
same names and order), with the design's tiles and orientation when a
:class:`~hwmodel.model.evaluation.DesignReport` is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
)
from hwmodel.arch.intops import NONLINEAR_BITS, VARIANTS, IntOp, IntSpec
from hwmodel.arch.program import (
    ALIGN_BYTES,
    F_B_KMAJOR,
    F_LOG2,
    F_OFFSET_PER_ROW,
    F_RAW,
    F_RESIDUAL,
    F_TRANSPOSED,
    F_WEIGHT,
    OPCODES,
    Descriptor,
    Operand,
    element_bytes,
    encode_program,
    program_bytes,
)
from hwmodel.model.evaluation import DesignReport
from hwmodel.target.vit import HEAD, PATCH_EMBED, block_layer

I64 = npt.NDArray[np.int64]
ROLES = ("program", "param", "input", "scratch", "output")
_DTYPES = {1: "<i1", 2: "<i2", 4: "<i4", 8: "<i8"}


@dataclass(frozen=True)
class Region:
    """A named tensor in DRAM: byte address, shape, little-endian numpy dtype, role (:data:`ROLES`)."""

    name: str
    addr: int
    shape: tuple[int, ...]
    dtype: str
    role: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def end(self) -> int:
        return self.addr + self.nbytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "addr": self.addr,
            "bytes": self.nbytes,
            "shape": list(self.shape),
            "dtype": np.dtype(self.dtype).name,
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
                data = np.ascontiguousarray(self.params[r.name], dtype=r.dtype).view(np.uint8).reshape(-1)
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


class _Layout:
    """Allocates regions one after another (64-byte aligned) and keeps the parameters' contents."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.params: dict[str, np.ndarray] = {}
        self.at = 0

    def add(self, name: str, shape: Sequence[int], elem: int, role: str, data: Any = None) -> Region:
        region = Region(name, self.at, tuple(int(s) for s in shape), _DTYPES[elem], role)
        self.regions.append(region)
        self.at = _align(region.end)
        if data is not None:
            arr = np.asarray(data.numpy() if isinstance(data, torch.Tensor) else data)
            if arr.size != int(np.prod(region.shape)):
                raise ValueError(f"{name}: {arr.size} values for a region of shape {region.shape}")
            info = np.iinfo(region.dtype)
            if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
                raise ValueError(f"{name}: values outside {np.dtype(region.dtype).name}")
            self.params[name] = arr.astype(region.dtype).reshape(region.shape)
        return region

    def param(self, name: str, data: torch.Tensor | np.ndarray, elem: int) -> Region:
        return self.add(name, tuple(data.shape), elem, "param", data)


def _matrix(
    region: Region, cols_from: int = 0, row_stride: int | None = None, head_stride: int = 0
) -> Operand:
    """An operand over a row-major region (``row_stride`` elements per row, default its width)."""
    elem = np.dtype(region.dtype).itemsize
    width = region.shape[-1]
    return Operand(
        region.addr + cols_from * elem, width if row_stride is None else row_stride, head_stride, elem
    )


def _bits_range(lo: int, hi: int) -> int:
    """The signed bits holding every value of ``[lo, hi]``."""
    return max(int(lo).bit_length(), int(hi).bit_length()) + 1


def _tables(lay: _Layout, name: str, rescales: Sequence[Rescale]) -> dict[str, int]:
    """Store the rescales' tables (concatenated along the channels); the descriptor's fields."""
    mult = torch.cat([r.dyadic.multiplier.reshape(-1) for r in rescales])
    shift = torch.cat([r.dyadic.shift.reshape(-1) for r in rescales])
    out = {
        "mult_addr": lay.param(f"{name}.mult", mult, 4).addr,
        "shift_addr": lay.add(f"{name}.shift", shift.shape, 1, "param", shift).addr,
        "table_len": int(mult.numel()),
    }
    offsets = [r.offset for r in rescales]
    if any(o is not None for o in offsets):
        if len(rescales) != 1:
            raise ValueError(f"{name}: offsets on a segmented output")
        offset = offsets[0]
        assert offset is not None
        out["offset_addr"] = lay.param(f"{name}.offset", offset, 8).addr
        if offset.ndim == 2:
            out["flags"] = F_OFFSET_PER_ROW
    return out


def _weights(lay: _Layout, name: str, lin: IntegerLinear, bits: int) -> dict[str, Any]:
    """Weight codes ``[O, K]`` (PoT channels: ``sign·(log2|w| + 1)``), the pot table, the bias."""
    values = lin.weight_t.t()
    mag = values.abs()
    log2 = torch.where(mag > 0, torch.log2(mag.clamp(min=1).double()).round().long() + 1, 0)
    codes = torch.where(lin.pot[:, None], values.sign() * log2, values)
    out: dict[str, Any] = {
        "b": _matrix(lay.param(f"{name}.w", codes, element_bytes(bits))),
        "bias_addr": lay.param(f"{name}.bias", lin.bias, 4).addr,
    }
    if bool(lin.pot.any()):
        out["pot_addr"] = lay.add(f"{name}.pot", lin.pot.shape, 1, "param", lin.pot.to(torch.int8)).addr
    return out


def _weight_bits(lin: IntegerLinear) -> int:
    """The code width of a layer's weights (PoT channels: the code, not the value 2^(…))."""
    values = lin.weight_t.t()
    fixed = values[~lin.pot]
    widest = int(fixed.abs().max()) if fixed.numel() else 0
    bits = _bits_range(-widest, widest)
    if bool(lin.pot.any()):
        mag = int(values[lin.pot].abs().max())
        bits = max(bits, _bits_range(0, mag.bit_length()))
    return bits


class _Compiler:
    def __init__(self, imodel: IntegerViT, report: DesignReport | None) -> None:
        self.m = imodel
        self.layers = {layer.name: layer for layer in report.layers} if report is not None else {}
        self.lay = _Layout()
        self.ops: list[Descriptor] = []

    def tiles(self, name: str) -> dict[str, int]:
        layer = self.layers.get(name)
        if layer is None:
            return {}
        return {
            "tm": min(layer.tm, layer.m),
            "tn": min(layer.tn, layer.n),
            "tk": min(layer.tk, layer.k),
            "flags": F_TRANSPOSED if layer.transposed else 0,
        }

    def scratch(self, name: str, shape: Sequence[int], bits: int) -> Region:
        return self.lay.add(name, shape, element_bytes(bits), "scratch")

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
        a: Operand,
        m: int,
        outputs: Sequence[tuple[Operand, Rescale]],
        residual: tuple[Operand, Rescale] | None = None,
        raw: Operand | None = None,
    ) -> None:
        """A weight GEMM ``m × K`` times ``K × O`` with its epilogue."""
        n, k = int(lin.weight_t.shape[1]), int(lin.weight_t.shape[0])
        w_bits = _weight_bits(lin)
        parts: list[Mapping[str, Any]] = [
            {"m": m, "n": n, "k": k, "a": a, "in_bits": lin.in_bits, "flags": F_WEIGHT, "bits": w_bits},
            _weights(self.lay, name, lin, w_bits),
            self.tiles(name),
        ]
        parts.append(self.epilogue(name, outputs, residual, raw))
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

    def layernorm(self, name: str, ln: IntegerLayerNorm, src: Region, dst: Region) -> None:
        rows, cols = src.shape
        self.nonlinear(name, "layernorm", ln.op, ln.spec, _matrix(src), rows, cols, _matrix(dst), ln.out)

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
        heads = blocks[0].heads
        hidden = int(blocks[0].fc1.weight_t.shape[1])
        res_elem = element_bytes(RESIDUAL_BITS)

        program = lay.add("program", (program_bytes(self.n_ops(len(blocks))),), 1, "program")
        x0_init = torch.zeros(tokens, d, dtype=torch.int64)
        x0_init[0] = m.cls_codes
        x0 = lay.add("x0", (tokens, d), res_elem, "param", x0_init)
        inp = lay.add("input", (patches, k_in), element_bytes(pe.in_bits), "input")
        # scratch: the residual stream (two buffers beside x0 and the mid-block one), the rest
        xs = [lay.add(f"x{i}", (tokens, d), res_elem, "scratch") for i in (1, 2)]
        xmid = lay.add("xmid", (tokens, d), res_elem, "scratch")
        in_bits = max(max(b.qkv.in_bits, b.fc1.in_bits) for b in blocks)
        ln_out = self.scratch("ln", (tokens, d), max(in_bits, m.head.in_bits))
        q_bits = max(max(b.to_q.hi, b.to_k.hi, b.to_v.hi).bit_length() + 1 for b in blocks)
        q, kk, v = (self.scratch(n, (tokens, d), q_bits) for n in ("q", "k", "v"))
        s = self.scratch("s", (heads, tokens, tokens), NONLINEAR_BITS)
        p_bits = max(_bits_range(0, 1 << b.soft_spec.out_frac) if b.log2 else b.p_bits + 1 for b in blocks)
        pbuf = self.scratch("p", (heads, tokens, tokens), p_bits)
        o = self.scratch("o", (tokens, d), max(b.proj.in_bits for b in blocks))
        h = self.scratch("h", (tokens, hidden), NONLINEAR_BITS)
        g = self.scratch("g", (tokens, hidden), max(b.fc2.in_bits for b in blocks))
        classes = int(m.head.weight_t.shape[1])
        logits = lay.add("logits", (1, classes), 4, "output")

        self.gemm(
            PATCH_EMBED,
            pe,
            _matrix(inp),
            patches,
            [(Operand(x0.addr + d * res_elem, d, 0, res_elem), m.embed)],
        )
        x_in = x0
        for i, blk in enumerate(blocks):
            x_out = xs[i % 2]
            self.block(i, blk, x_in, xmid, x_out, ln_out, (q, kk, v), s, pbuf, o, h, g)
            x_in = x_out
        self.layernorm("norm", m.norm, x_in, ln_out)
        self.gemm(HEAD, m.head, _matrix(ln_out), 1, [], raw=_matrix(logits))
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
        ln: Region,
        qkv: tuple[Region, Region, Region],
        s: Region,
        p: Region,
        o: Region,
        h: Region,
        g: Region,
    ) -> None:
        tokens, d = x_in.shape
        heads, hd = blk.heads, blk.head_dim
        q, k, v = qkv
        name = f"blocks.{i}"
        self.layernorm(f"{name}.norm1", blk.norm1, x_in, ln)
        self.gemm(
            block_layer(i, "attn.qkv"),
            blk.qkv,
            _matrix(ln),
            tokens,
            [(_matrix(q), blk.to_q), (_matrix(k), blk.to_k), (_matrix(v), blk.to_v)],
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
                    "in_bits": blk.to_q.hi.bit_length() + 1,
                    "bits": blk.to_k.hi.bit_length() + 1,
                    "a": _matrix(q, row_stride=d, head_stride=hd),
                    "b": _matrix(k, row_stride=d, head_stride=hd),
                },
                self.tiles(qk),
                self.epilogue(qk, [(_matrix(s, head_stride=tokens * tokens), blk.to_softmax)]),
            ],
        )
        soft = f"{name}.attn.softmax"
        self.nonlinear(
            soft,
            "softmax",
            blk.soft_op,
            blk.soft_spec,
            _matrix(s),
            heads * tokens,
            tokens,
            _matrix(p),
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
                    "in_bits": blk.p_bits,
                    "bits": blk.to_v.hi.bit_length() + 1,
                    "flags": F_B_KMAJOR,
                    "a": _matrix(p, head_stride=tokens * tokens),
                    "b": _matrix(v, row_stride=d, head_stride=hd),
                },
                self.tiles(sv),
                self.epilogue(sv, [(_matrix(o, row_stride=d, head_stride=hd), blk.to_proj)]),
            ],
        )
        self.gemm(
            block_layer(i, "attn.proj"),
            blk.proj,
            _matrix(o),
            tokens,
            [(_matrix(xmid), blk.add1)],
            residual=(_matrix(x_in), blk.skip1),
        )
        self.layernorm(f"{name}.norm2", blk.norm2, xmid, ln)
        self.gemm(block_layer(i, "mlp.fc1"), blk.fc1, _matrix(ln), tokens, [(_matrix(h), blk.to_gelu)])
        self.nonlinear(
            f"{name}.mlp.act",
            "gelu",
            blk.gelu_op,
            blk.gelu_spec,
            _matrix(h),
            tokens,
            int(h.shape[1]),
            _matrix(g),
            blk.from_gelu,
        )
        self.gemm(
            block_layer(i, "mlp.fc2"),
            blk.fc2,
            _matrix(g),
            tokens,
            [(_matrix(x_out), blk.add2)],
            residual=(_matrix(xmid), blk.skip2),
        )


def compile_program(imodel: IntegerViT, report: DesignReport | None = None, model: str = "") -> Program:
    """The accelerator program of an integer model (with ``report``: the design's tiles and
    orientations in the GEMM descriptors; ``model``: the name ``program.json`` records)."""
    return replace(_Compiler(imodel, report).compile(), model=model)
