"""The GEMM epilogue unit (PyRTL) against the program's reference epilogue
(:func:`codesign.program._execute.gemm_epilogue`), bit for bit on the DRAM image.

Every layout here is byte-aligned for the writer (the writer refuses rows that do not start and
end on a byte; :func:`hwmodel.rtl.epilogue.simulate_epilogue` checks each window first): the tiny
ViT's GEMM outputs are (8-, 16-, 24- and 32-bit rows, 4-bit rows of 24 codes).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_integer import config
from test_quant_model import tiny_vit

from codesign.program import Program, compile_program, gemm_epilogue
from codesign.quant import Calibration, quantize_integer_model
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.arch.dma import DmaConfig
from hwmodel.arch.dyadic import MULT_BITS, OFFSET_BITS, SHIFT_BITS
from hwmodel.arch.program import (
    F_OFFSET_PER_ROW,
    F_RAW,
    F_RESIDUAL,
    OPCODES,
    Descriptor,
    Operand,
    pack_codes,
    read_operand,
    write_operand,
)
from hwmodel.model.evaluation import evaluate
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.epilogue import EpilogueSpec, Tile, build_epilogue, simulate_epilogue, simulate_epilogues
from hwmodel.rtl.verilog import working_block_verilog
from hwmodel.target.device import load_device
from hwmodel.target.workload import workload_from_model


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    model = tiny_vit()
    images = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    calib = Calibration(model, images)
    accel = AcceleratorConfig(freq_mhz=200, rows=8, cols=16, default=LayerHw(tm=8, tn=16, tk=16))
    report = evaluate(workload_from_model(model), accel, load_device("zcu102"), detail=True)
    out = {}
    for name, cfg in (("W8A8", config("W8A8")), ("W4A8P0.5", config("W4A8P0.5", "shift", "log2"))):
        out[name] = compile_program(quantize_integer_model(model, cfg, calib), report)
    return out


def grid(d: Descriptor) -> list[Tile]:
    """The output's tiles (``tm × tn``, edge tiles smaller), heads outermost, n then m."""
    tm, tn = d.tm or d.m, d.tn or d.n
    return [
        (h, m0, min(tm, d.m - m0), n0, min(tn, d.n - n0))
        for h in range(d.repeat)
        for n0 in range(0, d.n, tn)
        for m0 in range(0, d.m, tm)
    ]


def accumulators(d: Descriptor, seed: int, bound: int = 1 << 20) -> np.ndarray:
    return np.random.default_rng(seed).integers(-bound, bound, size=(d.repeat, d.m, d.n), dtype=np.int64)


def check(
    spec: EpilogueSpec, image: np.ndarray, d: Descriptor, acc: np.ndarray, tiles: list[Tile], **kw: object
) -> int:
    want = image.copy()
    gemm_epilogue(want, d, torch.from_numpy(acc))
    assert np.any(want != image)  # the op writes something the image did not hold
    run = simulate_epilogue(spec, image, d, acc, tiles, **kw)  # type: ignore[arg-type]
    assert not run.error
    diff = np.flatnonzero(run.image != want)
    assert diff.size == 0, f"{d.name}: {diff.size} bytes differ, first at {diff[:8]}"
    return run.cycles


def with_residual_stream(image: np.ndarray, d: Descriptor, seed: int) -> np.ndarray:
    """The image with random codes in the residual operand R (24-bit stream)."""
    out = image.copy()
    lim = 1 << (d.r.bits - 1)
    r = np.random.default_rng(seed).integers(-lim, lim, size=(d.repeat, d.m, d.n), dtype=np.int64)
    write_operand(out, d.r, r)
    return out


OPS = [
    ("W8A8", "patch_embed.proj"),
    ("W8A8", "blocks.0.attn.qkv"),
    ("W4A8P0.5", "blocks.0.attn.qkv"),
    ("W8A8", "blocks.0.attn.qk"),
    ("W8A8", "blocks.0.attn.proj"),
    ("W8A8", "blocks.0.mlp.fc1"),
    ("W8A8", "blocks.1.mlp.fc2"),
    ("W8A8", "head"),
]


@pytest.mark.parametrize(("precision", "name"), OPS)
def test_the_epilogue_is_the_reference_on_the_tiny_vits_gemms(
    programs: dict[str, Program], precision: str, name: str
) -> None:
    program = programs[precision]
    d = next(x for x in program.descriptors if x.name == name)
    spec = EpilogueSpec.from_descriptors(program.descriptors)
    image = program.image()
    if d.has(F_RESIDUAL):
        image = with_residual_stream(image, d, 1)
    tiles = grid(d)
    check(spec, image, d, accumulators(d, 2), tiles, stall=0.2, seed=3)


class _Image:
    """A synthetic DRAM image: regions one after another, 64-byte aligned."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray]] = []
        self.at = 64

    def put(self, codes: np.ndarray, bits: int) -> int:
        addr = self.at
        data = pack_codes(codes, bits)
        self.parts.append((addr, data))
        self.at = -(-(addr + data.size + 8) // 64) * 64
        return addr

    def space(self, nbytes: int) -> int:
        addr = self.at
        self.at = -(-(addr + nbytes + 8) // 64) * 64
        return addr

    def image(self, seed: int) -> np.ndarray:
        mem = np.random.default_rng(seed).integers(0, 256, size=self.at + 64, dtype=np.uint8)
        for addr, data in self.parts:
            mem[addr : addr + data.size] = data
        return mem


@st.composite
def epilogues(draw: st.DrawFn) -> tuple[EpilogueSpec, np.ndarray, Descriptor, np.ndarray, list[Tile]]:
    """A random GEMM epilogue: shape, tiles (shuffled), tables, mode and outputs."""
    mode = draw(st.sampled_from(["rescale", "segments", "residual", "raw"]))
    repeat = draw(st.integers(1, 2)) if mode != "residual" else 1
    segments = draw(st.integers(2, 3)) if mode == "segments" else 1
    seg_cols = draw(st.integers(1, 7)) if mode == "segments" else 0
    m = draw(st.integers(1, 9))
    n = segments * seg_cols if mode == "segments" else draw(st.integers(1, 13))
    tm, tn = draw(st.integers(1, m)), draw(st.integers(1, n))
    elems = draw(st.sampled_from([1, 2, 4]))
    data_bits = draw(st.sampled_from([64, 128]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = _Image()
    per_tensor = draw(st.booleans())
    table_len = 1 if per_tensor else n
    fields: dict[str, object] = {"m": m, "n": n, "k": 1, "repeat": repeat, "tm": tm, "tn": tn, "flags": 0}
    if draw(st.booleans()):
        fields["bias_addr"] = img.put(rng.integers(-(1 << 29), 1 << 29, size=n), 32)
    if mode != "raw":
        fields["mult_addr"] = img.put(rng.integers(-(1 << 31) + 1, 1 << 31, size=table_len), MULT_BITS)
        fields["shift_addr"] = img.put(rng.integers(0, 63, size=table_len), SHIFT_BITS)
        fields["table_len"] = table_len
        # offsets are indexed like the tables: per column (a per-tensor table has none)
        offsets = "none" if per_tensor else draw(st.sampled_from(["none", "column", "row"]))
        if offsets != "none":
            rows = m if offsets == "row" else 1
            fields["offset_addr"] = img.put(rng.integers(-(1 << 61) + 1, 1 << 61, size=rows * n), OFFSET_BITS)
            if offsets == "row":
                fields["flags"] = F_OFFSET_PER_ROW
    outputs = {}
    for s in range(segments):
        bits = 32 if mode == "raw" else draw(st.sampled_from([8, 16, 24, 32]))
        signed = 1 if mode in ("raw", "residual") else draw(st.sampled_from([0, 1]))
        cols = seg_cols if mode == "segments" else n
        stride = cols + draw(st.integers(0, 3))
        addr = img.space(repeat * m * stride * bits // 8 + 64)
        suffix = "" if s == 0 else str(s)
        outputs[f"c{suffix}"] = Operand(addr, stride, m * stride, bits, signed)
        if mode != "raw":
            top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            bottom = -(1 << (bits - 1)) if signed else 0
            fields[f"lo{suffix}"] = draw(st.integers(bottom, min(0, top) if signed else top // 2))
            fields[f"hi{suffix}"] = draw(st.integers(max(int(fields[f"lo{suffix}"]), 0), top))  # type: ignore[call-overload]
    if mode == "segments":
        fields |= {"segments": segments, "seg_cols": seg_cols}
    if mode == "raw":
        fields["flags"] = F_RAW
    if mode == "residual":
        r_bits = draw(st.sampled_from([8, 16, 24, 32]))
        lim = 1 << (r_bits - 1)
        r = rng.integers(-lim, lim, size=(m, n))
        fields["r"] = Operand(img.put(r, r_bits), n, 0, r_bits, 1)
        fields["flags"] = int(fields["flags"]) | F_RESIDUAL  # type: ignore[call-overload]
        fields["skip_mult"] = int(rng.integers(-(1 << 31) + 1, 1 << 31))
        fields["skip_shift"] = int(rng.integers(0, 63))
    d = Descriptor("gemm", OPCODES["gemm"], **fields, **outputs)  # type: ignore[arg-type]
    tiles = [
        (h, m0, min(tm, m - m0), n0, min(tn, n - n0))
        for h in range(repeat)
        for n0 in range(0, n, tn)
        for m0 in range(0, m, tm)
    ]
    tiles = draw(st.permutations(tiles))
    acc = rng.integers(-(1 << 29), 1 << 29, size=(repeat, m, n))
    spec = EpilogueSpec.from_descriptors([d], elems=elems, data_bits=data_bits)
    return spec, img.image(int(rng.integers(0, 1 << 31))), d, acc, list(tiles)


@settings(max_examples=40, deadline=None)
@given(epilogues(), st.floats(0.0, 0.5), st.integers(1, 20), st.sampled_from([None, 3.0, 10.0]))
def test_the_epilogue_is_the_reference_on_random_tables_and_tiles(
    case: tuple[EpilogueSpec, np.ndarray, Descriptor, np.ndarray, list[Tile]],
    stall: float,
    latency: int,
    bandwidth: float | None,
) -> None:
    """Also under C-stream stalls, any DRAM latency and a DRAM bandwidth cap (bytes a cycle)."""
    spec, image, d, acc, tiles = case
    check(spec, image, d, acc, tiles, stall=stall, latency_cycles=latency, bytes_per_cycle=bandwidth)


def test_a_tile_larger_than_the_build_is_an_error_not_a_hang(programs: dict[str, Program]) -> None:
    program = programs["W8A8"]
    d = next(x for x in program.descriptors if x.name == "blocks.0.mlp.fc1")
    spec = replace(EpilogueSpec.from_descriptors(program.descriptors), tile_cols=8)
    image = program.image()
    run = simulate_epilogue(spec, image, d, accumulators(d, 5), [(0, 0, 8, 0, 16), (0, 8, 8, 0, 8)])
    assert run.error
    assert len(run.last_words) == 2  # both tiles taken; the refused one written nowhere
    want = image.copy()
    gemm_epilogue(want, d, torch.from_numpy(accumulators(d, 5)))
    got = read_operand(run.image, d.c, (1, d.m, d.n))[0]
    assert np.array_equal(got[8:16, :8], read_operand(want, d.c, (1, d.m, d.n))[0][8:16, :8])
    assert np.array_equal(got[:8], read_operand(image, d.c, (1, d.m, d.n))[0][:8])


def test_the_build_follows_the_programs_gemms(programs: dict[str, Program]) -> None:
    program = programs["W8A8"]
    spec = EpilogueSpec.from_descriptors(program.descriptors, elems=8, data_bits=256)
    assert (spec.tile_rows, spec.tile_cols, spec.residual, spec.offsets) == (8, 16, True, True)
    assert (spec.read, spec.write) == (DmaConfig(256, 4, 64), DmaConfig(256, 8, 32))
    assert spec.r_bits == 24 and spec.words == 2
    qk = [d for d in program.descriptors if d.name.endswith("attn.qk")]
    assert not EpilogueSpec.from_descriptors(qk).residual
    with pytest.raises(ValueError, match="divisor of elems"):
        EpilogueSpec(elems=2, read=DmaConfig(256, 4, 64))


def test_the_unit_exports_verilog() -> None:
    fresh_block()
    build_epilogue(EpilogueSpec(tile_rows=4, tile_cols=8))
    text = working_block_verilog("codesign_epilogue")
    assert "module codesign_epilogue" in text
    for port in ("c_ready", "m_awvalid", "m_arvalid", "d_skip_mult", "core_done"):
        assert port in text


def test_gemms_run_back_to_back_on_one_unit(programs: dict[str, Program]) -> None:
    """One unit runs a block's GEMM epilogues one after another (per-op state afresh: the tables'
    cache, the per-tensor pair, the segments)."""
    program = programs["W4A8P0.5"]
    spec = EpilogueSpec.from_descriptors(program.descriptors)
    names = ("blocks.1.attn.qkv", "blocks.1.attn.qk", "blocks.1.attn.proj", "blocks.1.mlp.fc1", "head")
    ops = [next(x for x in program.descriptors if x.name == name) for name in names]
    image = with_residual_stream(program.image(), ops[2], 7)
    jobs = [(d, accumulators(d, 20 + i), grid(d)) for i, d in enumerate(ops)]
    run = simulate_epilogues(spec, image, jobs, stall=0.1, seed=5)
    assert not run.error
    want = image.copy()
    for d, acc, _ in jobs:
        gemm_epilogue(want, d, torch.from_numpy(acc))
    assert np.array_equal(run.image, want)
