"""The GEMM core (:mod:`hwmodel.rtl.gemm`): one ``gemm`` descriptor through the tile DMA, the tile
frontend and the C stream, in PyRTL's ``FastSimulation`` against the testbench DRAM; every output
tile's accumulators bit-exact against numpy's A·B of the operands as the program lays them out
(weights with PoT channels, activations n- or k-major, heads, transposed, every packing mode),
and real GEMMs of the tiny ViT's compiled program against the reference semantics' operands."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.program import Program, compile_program, execute
from codesign.program._execute import gemm_accumulators
from codesign.quant import Calibration, quantize_integer_model
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.arch.cycles import ceil_div, mixed_tile_cycles
from hwmodel.arch.dma import Window, read_cycles
from hwmodel.arch.engine import EngineConfig, decode_pot
from hwmodel.arch.program import (
    F_B_KMAJOR,
    F_TRANSPOSED,
    F_WEIGHT,
    OPCODES,
    Descriptor,
    Operand,
    encode_program,
    read_operand,
    write_operand,
)
from hwmodel.model.evaluation import design_engine, evaluate
from hwmodel.rtl.gemm import GemmRun, GemmSpec, cosimulate_gemm, gemm_spec, simulate_gemm, simulate_gemms
from hwmodel.rtl.tile import TILE_LATENCY
from hwmodel.rtl.verilog import iverilog_available
from hwmodel.target.device import load_device
from hwmodel.target.workload import workload_from_model

I64 = npt.NDArray[np.int64]
GEMM = OPCODES["gemm"]


def reference(mem: npt.NDArray[np.uint8], d: Descriptor) -> I64:
    """C[h] = A[h]·B[h] (repeat, m, n) of the operands in ``mem``, as ``codesign.program``'s
    ``_gemm`` reads them (PoT channels decoded), wrapped to int32."""
    a = read_operand(mem, d.a, (d.repeat, d.m, d.k))
    if d.has(F_WEIGHT):
        codes = read_operand(mem, d.b, (1, d.n, d.k))[0]
        if d.pot_addr:
            pot = read_operand(mem, Operand(d.pot_addr, d.n, 0, 1, 0), (1, 1, d.n)).reshape(-1).astype(bool)
            codes = codes.copy()
            codes[pot] = decode_pot(codes[pot] & ((1 << d.b.bits) - 1), d.b.bits)
        b = np.broadcast_to(codes[None], (d.repeat, d.n, d.k))
    elif d.has(F_B_KMAJOR):
        b = read_operand(mem, d.b, (d.repeat, d.k, d.n)).transpose(0, 2, 1)
    else:
        b = read_operand(mem, d.b, (d.repeat, d.n, d.k))
    acc: I64 = np.einsum("hmk,hnk->hmn", a, b)
    return ((acc + (1 << 31)) % (1 << 32)) - (1 << 31)


def check(spec: GemmSpec, mem: npt.NDArray[np.uint8], d: Descriptor, **kwargs: object) -> GemmRun:
    """Run ``d`` and hold every tile of the C stream to the reference: tiles in the model's order
    (heads, m, n), each exactly once, extents clipped at the edges."""
    run = simulate_gemm(spec, mem, d, **kwargs)  # type: ignore[arg-type]
    want = reference(mem, d)
    order = [(h, m0, n0) for h in range(d.repeat) for m0 in range(0, d.m, d.tm) for n0 in range(0, d.n, d.tn)]
    assert [(t.h, t.m0, t.n0) for t in run.tiles] == order
    for t in run.tiles:
        rows, cols = min(d.tm, d.m - t.m0), min(d.tn, d.n - t.n0)
        assert t.values.shape == (rows, cols)
        np.testing.assert_array_equal(t.values, want[t.h, t.m0 : t.m0 + rows, t.n0 : t.n0 + cols])
    return run


def codes(rng: np.random.Generator, shape: tuple[int, ...], bits: int, signed: int) -> I64:
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    return rng.integers(lo, hi, shape, dtype=np.int64)


def pot_weights(rng: np.random.Generator, n: int, k: int, bits: int, ratio: float) -> tuple[I64, I64]:
    """Weight codes with PoT channels (any ``bits`` code ``sign << (b−1) | m``, stored read signed,
    as the compiler stores them) and the PoT mask."""
    pot = (rng.random(n) < ratio).astype(np.int64)
    w = codes(rng, (n, k), bits, 1)
    raw = rng.integers(0, 1 << bits, (n, k), dtype=np.int64)
    signed = raw - ((raw >> (bits - 1)) & 1) * (1 << bits)
    return np.where(pot[:, None] == 1, signed, w), pot


A_AT, B_AT, POT_AT = 64, 8192, 16384
#: the bytes of one op's operands in an image of several
OP_BYTES = 20480


def layout(
    rng: np.random.Generator,
    kind: str,
    m: int,
    n: int,
    k: int,
    heads: int,
    a_bits: int,
    b_bits: int,
    a_signed: int = 1,
    pot_ratio: float = 0.0,
    into: tuple[npt.NDArray[np.uint8], int] | None = None,
) -> tuple[npt.NDArray[np.uint8], dict[str, object]]:
    """A DRAM image with A and B (and a PoT table) laid out as the program lays them: ``kind``
    ``weight`` (B n-major weights, one head), ``nmajor`` (B activations n-major, heads
    interleaved in the rows as Q·Kᵀ's), ``kmajor`` (V); returns the image and the descriptor's
    operand fields. ``into``: an image and a byte offset to lay them out at (default: a new
    32 KiB image, offset 0)."""
    mem, at = into if into is not None else (np.zeros(1 << 15, dtype=np.uint8), 0)
    a = Operand(at + A_AT, heads * k + 1, k, a_bits, a_signed)  # rows wider than a head: strided heads
    write_operand(mem, a, codes(rng, (heads, m, k), a_bits, a_signed))
    fields: dict[str, object] = {"a": a}
    if kind == "weight":
        b = Operand(at + B_AT, k, 0, b_bits, 1)
        w, pot = pot_weights(rng, n, k, b_bits, pot_ratio)
        write_operand(mem, b, w[None])
        if pot.any():
            write_operand(mem, Operand(at + POT_AT, n, 0, 1, 0), pot[None, None])
            fields["pot_addr"] = at + POT_AT
        fields["flags"] = F_WEIGHT
    elif kind == "nmajor":
        b = Operand(at + B_AT, heads * k, k, b_bits, 1)
        write_operand(mem, b, codes(rng, (heads, n, k), b_bits, 1))
    else:
        b = Operand(at + B_AT, heads * n + 3, n, b_bits, 1)
        write_operand(mem, b, codes(rng, (heads, k, n), b_bits, 1))
        fields["flags"] = F_B_KMAJOR
    fields["b"] = b
    return mem, fields


def descriptor(
    fields: dict[str, object], m: int, n: int, k: int, heads: int, tiles: tuple[int, int, int], flags: int = 0
) -> Descriptor:
    tm, tn, tk = tiles
    kwargs = dict(fields)
    kwargs["flags"] = int(kwargs.get("flags", 0)) | flags  # type: ignore[call-overload]
    return Descriptor("gemm", GEMM, m=m, n=n, k=k, repeat=heads, tm=tm, tn=tn, tk=tk, **kwargs)  # type: ignore[arg-type]


W8A8 = EngineConfig(4, 2, 0, 8, 4, 8, 24, 2)
MIXED = EngineConfig(4, 2, 2, 8, 4, 8, 24, 2)
TWO_MODES = EngineConfig(6, 2, 0, 8, 4, 8, 26, 4)  # the 2-lane mode (shared words) and the 4-lane one
QUAD = EngineConfig(4, 2, 0, 4, 4, 4, 16, 4)

# (engine, kind, (m, n, k, heads), tiles, (a bits, b bits, a signed), flags, PoT ratio)
CASES = {
    "weights, edge tiles, 2 k tiles": (W8A8, "weight", (10, 7, 20, 1), (8, 4, 16), (8, 8, 1), 0, 0.0),
    "K n-major, heads": (W8A8, "nmajor", (9, 7, 11, 2), (4, 5, 8), (8, 6, 1), 0, 0.0),
    "K n-major, heads, transposed": (W8A8, "nmajor", (9, 7, 11, 2), (4, 5, 8), (8, 6, 1), F_TRANSPOSED, 0.0),
    "V k-major, unsigned P": (W8A8, "kmajor", (9, 7, 11, 2), (4, 5, 8), (7, 8, 0), 0, 0.0),
    "V k-major, transposed": (W8A8, "kmajor", (9, 7, 11, 2), (4, 5, 8), (7, 8, 0), F_TRANSPOSED, 0.0),
    "PoT channels": (MIXED, "weight", (9, 13, 11, 1), (8, 6, 8), (8, 4, 1), 0, 0.5),
    "PoT 3-bit codes re-encoded": (MIXED, "weight", (9, 13, 11, 1), (8, 6, 8), (8, 3, 1), 0, 0.5),
    "PoT only": (MIXED, "weight", (5, 6, 9, 1), (8, 6, 8), (8, 4, 1), 0, 1.0),
    "two modes, W8A8: shared words": (TWO_MODES, "weight", (9, 13, 11, 1), (8, 6, 8), (8, 8, 1), 0, 0.0),
    "two modes, W4A4: 4 lanes": (TWO_MODES, "weight", (9, 13, 11, 1), (8, 6, 8), (4, 4, 1), 0, 0.0),
    "two modes, V k-major W8A8": (TWO_MODES, "kmajor", (9, 13, 11, 1), (8, 6, 8), (8, 8, 1), 0, 0.0),
    "two modes, V k-major 4 lanes, transposed": (
        TWO_MODES, "kmajor", (9, 13, 11, 1), (8, 6, 8), (4, 4, 1), F_TRANSPOSED, 0.0,
    ),
    "4 lanes only": (QUAD, "weight", (9, 13, 11, 1), (8, 6, 8), (4, 4, 1), 0, 0.0),
    # one k tile: A's tile stays in its buffer across the n tiles of an m tile
    "weights, one k tile": (W8A8, "weight", (10, 13, 8, 1), (8, 4, 8), (8, 8, 1), 0, 0.0),
    "PoT channels, one k tile": (MIXED, "weight", (9, 13, 8, 1), (8, 6, 8), (8, 4, 1), 0, 0.5),
    "K n-major, one k tile, transposed": (
        W8A8, "nmajor", (9, 11, 8, 2), (4, 4, 8), (8, 8, 1), F_TRANSPOSED, 0.0,
    ),
}  # fmt: skip


#: the cases run with two read channels too (the token and the channel operand side by side)
TWO_READERS = (
    "V k-major, transposed",
    "PoT channels",
    "two modes, W8A8: shared words",
    "weights, one k tile",
    "K n-major, one k tile, transposed",
)


@pytest.mark.parametrize(
    ("name", "readers"), [(name, 1) for name in CASES] + [(name, 2) for name in TWO_READERS]
)
def test_the_c_stream_is_a_times_b(name: str, readers: int) -> None:
    engine, kind, (m, n, k, heads), tiles, (ab, bb, sa), flags, ratio = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    mem, fields = layout(rng, kind, m, n, k, heads, ab, bb, sa, ratio)
    d = descriptor(fields, m, n, k, heads, tiles, flags)
    check(gemm_spec(engine, [d], data_bits=64, readers=readers), mem, d)


def test_back_pressure_holds_the_stream() -> None:
    """A consumer that takes a word on a random third of the cycles gets the same tiles."""
    rng = np.random.default_rng(5)
    mem, fields = layout(rng, "nmajor", 6, 5, 7, 2, 8, 8)
    d = descriptor(fields, 6, 5, 7, 2, (4, 3, 4), F_TRANSPOSED)
    spec = gemm_spec(W8A8, [d], data_bits=64)
    pattern = rng.random(100_000) < 0.33
    slow = check(spec, mem, d, ready=lambda cycle: bool(pattern[cycle]))
    fast = check(spec, mem, d)
    assert slow.cycles > fast.cycles


def test_ops_back_to_back_do_not_see_each_others_buffers() -> None:
    """A 4-lane op with an odd channel count after a wide op on the same core (what a program
    does): the last fold's missing channel shares its B word with a real one, and a stale 8-bit
    weight there would overflow its 4-bit lane into the real one's; the core writes it 0."""
    rng = np.random.default_rng(11)
    mem = np.zeros(1 << 16, dtype=np.uint8)
    _, wide = layout(rng, "weight", 9, 16, 12, 1, 8, 8, into=(mem, 0))
    _, quad = layout(rng, "weight", 9, 5, 12, 1, 4, 4, into=(mem, OP_BYTES))
    ops = [descriptor(wide, 9, 16, 12, 1, (8, 8, 12)), descriptor(quad, 9, 5, 12, 1, (8, 5, 12))]
    runs = simulate_gemms(gemm_spec(TWO_MODES, ops, data_bits=64), mem, ops)
    for d, run in zip(ops, runs, strict=True):
        want = reference(mem, d)
        for t in run.tiles:
            rows, cols = t.values.shape
            np.testing.assert_array_equal(t.values, want[t.h, t.m0 : t.m0 + rows, t.n0 : t.n0 + cols])


@pytest.mark.parametrize("readers", [1, 2])
def test_one_tile_takes_its_phases(readers: int) -> None:
    """One output tile of one k tile: setup, ⌈k / rows⌉ + 1 cycles of the B word count, each
    transfer's reader cycles + 1 (two readers: the longer transfer's + 1), the tile's
    :data:`TILE_LATENCY` + compute + 1, the header, one word a cycle, the step: the docstring's
    cycle count, exactly."""
    rng = np.random.default_rng(1)
    m, n, k = 8, 4, 16
    mem, fields = layout(rng, "weight", m, n, k, 1, 8, 8)
    d = descriptor(fields, m, n, k, 1, (m, n, k))
    spec = gemm_spec(W8A8, [d], data_bits=64, readers=readers)
    run = check(spec, mem, d)
    latency = 8
    xfer_a = read_cycles(d.a, Window(0, 0, m, 0, k), spec.dma, latency, None)
    xfer_b = read_cycles(d.b, Window(0, 0, n, 0, k), spec.dma, latency, None)
    compute = mixed_tile_cycles(m, n, k, W8A8, 0.0, (8, 8))
    ceil = ceil_div(k, W8A8.rows) + 1
    loads = (xfer_a + 1) + (xfer_b + 1) if readers == 1 else max(xfer_a, xfer_b) + 1
    expect = 1 + 1 + ceil + loads + (TILE_LATENCY + compute + 1) + 1 + m * n
    assert run.header_cycles == (expect - m * n - 1,)
    assert run.cycles == expect
    assert max(compute, m * n) < xfer_a  # the element-serial loads dominate


@pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed")
@pytest.mark.parametrize(
    ("case", "readers"), [("PoT channels", 2), ("two modes, V k-major 4 lanes, transposed", 1)]
)
def test_the_verilog_puts_out_the_same_stream(case: str, readers: int) -> None:
    """The exported Verilog (DSP primitives with their simulation models) replayed under Icarus
    with a PyRTL run's inputs puts out the same words in the same cycles. (k tiles of whole
    k-folds here: the B rows past a fold's depth are never written, and Icarus's unknown
    memory words would make the DSP models' products unknown, though their activations are 0.)"""
    engine, kind, _, _, (ab, bb, sa), flags, ratio = CASES[case]
    m, n, k, heads = 5, 6, 2 * engine.rows, 2
    mem, fields = layout(np.random.default_rng(7), kind, m, n, k, heads, ab, bb, sa, ratio)
    d = descriptor(fields, m, n, k, 1 if kind == "weight" else heads, (4, 4, engine.rows), flags)
    spec = gemm_spec(engine, [d], data_bits=64, readers=readers)
    run = simulate_gemm(spec, mem, d, record=True)
    assert len(run.words) == m * n * d.repeat
    assert cosimulate_gemm(spec, run) == run.words


Op = tuple[str, tuple[int, int, int, int], tuple[int, int, int], tuple[int, int, int], int, float]


@st.composite
def engines(draw: st.DrawFn) -> EngineConfig:
    wb, ab = (8, 8) if draw(st.booleans()) else (4, 4)
    rows, cols, pot = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    return EngineConfig(rows, cols, pot, wb, 4, ab, 24, draw(st.sampled_from((1, 2, 4))))


@st.composite
def ops(draw: st.DrawFn, engine: EngineConfig) -> Op:
    """A GEMM the engine runs: kind, (m, n, k, heads), tiles, (a bits, b bits, a signed), flags,
    PoT ratio."""
    wb, ab = engine.weight_bits, engine.act_bits
    kind = draw(st.sampled_from(("weight", "nmajor", "kmajor")))
    m, n, k = (draw(st.integers(1, 9)) for _ in range(3))
    heads = 1 if kind == "weight" else draw(st.integers(1, 2))
    tiles = (draw(st.integers(1, m)), draw(st.integers(1, n)), draw(st.integers(1, k)))
    a_bits = draw(st.integers(2, ab))
    b_bits = draw(st.integers(2, wb if kind == "weight" else ab))
    signed = draw(st.integers(0, 1)) if kind == "kmajor" else 1
    flags = draw(st.sampled_from((0, F_TRANSPOSED))) if kind != "weight" else 0
    pot = kind == "weight" and engine.cols_pot and b_bits <= engine.pot_weight_bits
    ratio = draw(st.sampled_from((0.0, 0.5, 1.0))) if pot else 0.0
    return kind, (m, n, k, heads), tiles, (a_bits, b_bits, signed), flags, ratio


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.data(),
    engines(),
    st.integers(0, 2**32 - 1),
    st.sampled_from((64, 128)),
    st.integers(1, 12),
    st.integers(1, 2),
)
def test_random_gemms_are_bit_exact(
    data: st.DataObject, engine: EngineConfig, seed: int, data_bits: int, latency: int, readers: int
) -> None:
    """One or two random GEMMs back to back on one core (the second sees the first's buffers)."""
    rng = np.random.default_rng(seed)
    mem = np.zeros(1 << 16, dtype=np.uint8)
    descs = []
    for i in range(data.draw(st.integers(1, 2))):
        kind, (m, n, k, heads), tiles, (ab, bb, sa), flags, ratio = data.draw(ops(engine))
        _, fields = layout(rng, kind, m, n, k, heads, ab, bb, sa, ratio, into=(mem, i * OP_BYTES))
        descs.append(descriptor(fields, m, n, k, heads, tiles, flags))
    spec = gemm_spec(engine, descs, data_bits=data_bits, readers=readers)
    runs = simulate_gemms(spec, mem, descs, latency_cycles=latency)
    for d, run in zip(descs, runs, strict=True):
        want = reference(mem, d)
        assert len(run.tiles) == d.repeat * ceil_div(d.m, d.tm) * ceil_div(d.n, d.tn)
        for t in run.tiles:
            rows, cols = t.values.shape
            np.testing.assert_array_equal(t.values, want[t.h, t.m0 : t.m0 + rows, t.n0 : t.n0 + cols])


# ----------------------------------------------------------------------------- the tiny ViT's program


@dataclass(frozen=True)
class _Compiled:
    """A compiled tiny ViT (one image's rows written), its design's engine and the core for it."""

    program: Program
    image: npt.NDArray[np.uint8]
    engine: EngineConfig
    spec: GemmSpec


def _compile(precision: str) -> _Compiled:
    from test_integer import config
    from test_program import CONFIGS
    from test_quant_model import tiny_vit

    model = tiny_vit()
    images = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    qconfig = CONFIGS["mixed"] if precision == "mixed" else config(precision)
    im = quantize_integer_model(model, qconfig, Calibration(model, images))
    workload = workload_from_model(model)
    device = load_device("zcu102")
    pot = "P" in precision
    tiles = {"tm": 8, "tn": 8, "tk": 8}
    accel = AcceleratorConfig(
        freq_mhz=200,
        rows=4,
        cols=4,
        pot_cols=2 if pot else 0,
        default=LayerHw(4, 8, 0.5, **tiles) if pot else LayerHw(**tiles),
        # activation × activation matmuls: no PoT channels
        layers={op.name: LayerHw(**tiles) for op in workload.gemms if op.name.endswith(("qk", "sv"))},
    )
    if precision == "mixed":  # its PoT fc1 on PoT columns; qk and sv run transposed in this design
        accel = AcceleratorConfig(
            freq_mhz=200, rows=4, cols=4, pot_cols=2, default=LayerHw(tm=8, tn=16, tk=16)
        )
    report = evaluate(workload, accel, device, detail=True)
    program = compile_program(im, report)
    engine = design_engine(workload, accel, device)
    image = program.image()
    write_operand(image, program.region("input").operand(), im.patches(im.codes(images))[0].numpy()[None])
    return _Compiled(program, image, engine, gemm_spec(engine, program.descriptors, data_bits=64))


_COMPILED: dict[str, _Compiled] = {}


def compiled(precision: str) -> _Compiled:
    if precision not in _COMPILED:
        _COMPILED[precision] = _compile(precision)
    return _COMPILED[precision]


def operands_before(c: _Compiled, name: str) -> tuple[npt.NDArray[np.uint8], Descriptor]:
    """The DRAM image as the reference semantics leave it before op ``name`` (the program's ops
    before it executed) and that op's descriptor."""
    ops = list(c.program.descriptors)
    i = next(i for i, d in enumerate(ops) if d.name == name)
    mem = c.image.copy()
    prefix = np.frombuffer(encode_program(ops[:i]), dtype=np.uint8)
    mem[: prefix.size] = prefix
    assert execute(mem) == i
    return mem, ops[i]


def reference_accumulators(mem: npt.NDArray[np.uint8], d: Descriptor) -> I64:
    """``_gemm``'s accumulators (before the bias), one block per head."""
    out: I64 = gemm_accumulators(mem, d).numpy()
    return np.broadcast_to(out, (d.repeat, d.m, d.n))


def run_program_gemm(precision: str, name: str, readers: int = 1, data_bits: int = 64) -> None:
    c = compiled(precision)
    mem, d = operands_before(c, name)
    spec = replace(c.spec, readers=readers, dma=replace(c.spec.dma, data_bits=data_bits))
    run = simulate_gemm(spec, mem, d)
    want = reference_accumulators(mem, d)
    assert len(run.tiles) == d.repeat * ceil_div(d.m, d.tm) * ceil_div(d.n, d.tn)
    for t in run.tiles:
        rows, cols = t.values.shape
        np.testing.assert_array_equal(t.values, want[t.h, t.m0 : t.m0 + rows, t.n0 : t.n0 + cols])


@pytest.mark.parametrize(("name", "readers"), [("blocks.1.attn.qk", 1), ("blocks.1.attn.sv", 2)])
def test_the_programs_attention_gemms_run_bit_exact(name: str, readers: int) -> None:
    run_program_gemm("W8A8", name, readers)


def test_the_core_widens_the_engine_for_unsigned_probabilities() -> None:
    """softmax·V's P is unsigned 8-bit (up to 255) on a W8A8 design: the model's engine has 8-bit
    signed activations, the core builds 9 (the sv GEMM above is bit-exact only so)."""
    c = compiled("W8A8")
    sv = next(d for d in c.program.descriptors if d.name.endswith("attn.sv"))
    assert (sv.a.bits, sv.a.signed) == (8, 0)
    assert (c.engine.act_bits, c.spec.engine.act_bits) == (8, 9)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "name"),
    [
        ("W8A8", "blocks.0.attn.qkv"),
        ("W8A8", "blocks.0.mlp.fc1"),
        ("W8A8", "head"),
        ("W4A8P0.5", "blocks.1.mlp.fc1"),
        ("W4A8P0.5", "blocks.1.attn.proj"),
    ],
)
def test_the_programs_weight_gemms_run_bit_exact(precision: str, name: str) -> None:
    if "P" in precision:
        d = next(d for d in compiled(precision).program.descriptors if d.name == name)
        assert d.pot_addr  # PoT channels at the compiler's positions
    run_program_gemm(precision, name)


@pytest.mark.slow
def test_every_gemm_of_a_mixed_program_runs_bit_exact() -> None:
    """Every GEMM of test_program's mixed config (W8A8 with a W4A8P0.25 fc1, a W5A7 qkv, a W6A6
    head) on a design that runs qk and sv transposed: two readers, a 128-bit bus."""
    c = compiled("mixed")
    gemms = [d for d in c.program.descriptors if d.kind == "gemm"]
    assert any(d.pot_addr for d in gemms)
    assert {F_TRANSPOSED, F_B_KMAJOR | F_TRANSPOSED} <= {d.flags & (F_TRANSPOSED | F_B_KMAJOR) for d in gemms}
    for d in gemms:
        run_program_gemm("mixed", d.name, readers=2, data_bits=128)


def test_a_widened_operand_that_breaks_the_packing_runs_unpacked() -> None:
    """softmax·V's unsigned 8-bit P needs 9-bit signed engine inputs; on a DSP48E1 engine of
    packing 4 (2-token modes) those pack one token a slice, which the tile buffers cannot hold
    beside the 4-lane mode's two: the core is built unpacked, and a weight GEMM and the P·V one
    both run bit-exact on it (the default model's Auto-ViT-Acc-like design on pynq_z2 needs it)."""
    engine = EngineConfig(4, 2, 2, 8, 4, 8, 24, 4, "DSP48E1")
    assert len({m.tokens for m in engine.modes}) == 1
    rng = np.random.default_rng(23)
    mem = np.zeros(1 << 16, dtype=np.uint8)
    _, weight = layout(rng, "weight", 9, 13, 11, 1, 8, 8, into=(mem, 0))
    _, pv = layout(rng, "kmajor", 9, 7, 11, 2, 8, 8, a_signed=0, into=(mem, OP_BYTES))
    ops = [descriptor(weight, 9, 13, 11, 1, (8, 6, 8)), descriptor(pv, 9, 7, 11, 2, (4, 5, 8))]
    spec = gemm_spec(engine, ops, data_bits=64)
    assert (spec.engine.act_bits, spec.engine.packing) == (9, 1)
    for d, run in zip(ops, simulate_gemms(spec, mem, ops), strict=True):
        want = reference(mem, d)
        for t in run.tiles:
            rows, cols = t.values.shape
            np.testing.assert_array_equal(t.values, want[t.h, t.m0 : t.m0 + rows, t.n0 : t.n0 + cols])
