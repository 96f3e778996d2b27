"""The non-linear op unit (PyRTL) against the program's reference
(:func:`codesign.program._execute.nonlinear_op`), bit for bit on the DRAM image, and its log2
quantizer against :func:`codesign.quant._integer.log2_codes`.

The writer refuses rows that do not start and end on a byte: the W4A8P0.5 log2 softmax writes
17-bit codes in rows of 17 (289 bits), so that test moves its output to a fresh region of 24-bit
codes (the same values, byte-aligned rows); every other layout here is the compiler's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyrtl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_integer import config
from test_quant_model import tiny_vit

from codesign.program import Program, compile_program, nonlinear_op
from codesign.quant import Calibration, quantize_integer_model
from codesign.quant._integer import log2_codes
from hwmodel.arch.intops import IntSpec
from hwmodel.arch.program import Descriptor, Operand, read_operand, write_operand
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.nl_op import NlOpSpec, build_nl_op, log2_quantizer, program_units, simulate_nl_op
from hwmodel.rtl.verilog import working_block_verilog


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    model = tiny_vit()
    images = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    calib = Calibration(model, images)
    return {
        name: compile_program(quantize_integer_model(model, cfg, calib))
        for name, cfg in (("W8A8", config("W8A8")), ("W4A8P0.5", config("W4A8P0.5", "shift", "log2")))
    }


def random_input(image: np.ndarray, d: Descriptor, seed: int, spread: int) -> np.ndarray:
    """The image with random codes of ``d``'s input (wider than ``in_bits`` for the residual
    stream, so that the clamp matters)."""
    out = image.copy()
    lim = 1 << (d.a.bits - 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(-spread, spread, size=(1, d.m, d.n)).clip(-lim, lim - 1)
    x[0, 0, :3] = [lim - 1, -lim, 0]  # beyond the kernel's input range at both ends
    write_operand(out, d.a, x)
    return out


def byte_aligned(image: np.ndarray, d: Descriptor) -> tuple[np.ndarray, Descriptor]:
    """``d`` as it is if its output rows start and end on a byte, else with its output in a new
    region of codes widened to whole bytes (the same values)."""
    if d.n * d.c.bits % 8 == 0 and d.c.row_stride * d.c.bits % 8 == 0:
        return image, d
    bits = -(-d.c.bits // 8) * 8
    addr = -(-image.size // 64) * 64
    grown = np.zeros(addr + -(-d.m * d.n * bits // 8 // 64) * 64 + 64, dtype=np.uint8)
    grown[: image.size] = image
    return grown, replace(d, c=Operand(addr, d.n, 0, bits, d.c.signed))


CASES = [
    ("W8A8", "blocks.0.norm1"),
    ("W8A8", "blocks.0.attn.softmax"),
    ("W8A8", "blocks.0.mlp.act"),
    ("W8A8", "norm"),
    ("W4A8P0.5", "blocks.1.norm2"),
    ("W4A8P0.5", "blocks.0.attn.softmax"),
    ("W4A8P0.5", "blocks.0.mlp.act"),
]


@pytest.mark.parametrize(("precision", "name"), CASES)
def test_the_unit_is_the_reference_on_the_tiny_vits_ops(
    programs: dict[str, Program], precision: str, name: str
) -> None:
    program = programs[precision]
    d = next(x for x in program.descriptors if x.name == name)
    spec = NlOpSpec.from_descriptors(program.descriptors)
    spread = {"layernorm": 1 << 17, "softmax": 1 << 14, "gelu": 1 << 16}[d.kind]
    image = random_input(program.image(), d, 4, spread)
    image, d = byte_aligned(image, d)
    want = image.copy()
    nonlinear_op(want, d)
    assert np.any(want != image)
    run = simulate_nl_op(spec, image, d)
    assert not run.error
    got, exp = (read_operand(x, d.c, (1, d.m, d.n))[0] for x in (run.image, want))
    assert np.array_equal(got, exp), f"{name}: {(got != exp).sum()} codes differ"
    assert np.array_equal(run.image, want)


def test_the_build_follows_the_program(programs: dict[str, Program]) -> None:
    spec = NlOpSpec.from_descriptors(programs["W4A8P0.5"].descriptors, lanes=3)
    kinds = {(k, v) for k, v, _ in spec.units}
    assert kinds == {("layernorm", "shift"), ("softmax", "shift"), ("gelu", "shift")}
    assert (spec.lanes, spec.log2_rows, spec.log2_cols, spec.log2) == (3, 5, 7, True)
    assert not NlOpSpec.from_descriptors(programs["W8A8"].descriptors).log2
    assert len(program_units(programs["W8A8"].descriptors)) == 3


def test_a_descriptor_the_build_lacks_is_an_error_not_a_hang(programs: dict[str, Program]) -> None:
    program = programs["W8A8"]
    d = next(x for x in program.descriptors if x.name == "blocks.0.norm1")
    spec = NlOpSpec(units=tuple(u for u in program_units(program.descriptors) if u[0] != "layernorm"))
    image = program.image()
    run = simulate_nl_op(spec, image, d)
    assert run.error and run.cycles == 2  # done two cycles after op_start
    assert np.array_equal(run.image, image)
    other = replace(d, out_frac=d.out_frac + 1)  # a LayerNorm of formats the build has no lanes for
    run = simulate_nl_op(NlOpSpec(units=program_units(program.descriptors)), image, other)
    assert run.error and np.array_equal(run.image, image)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_the_log2_quantizer_is_log2_codes(data: st.DataObject) -> None:
    width, max_frac = 17, 18
    cases = [
        (
            data.draw(st.integers(0, (1 << width) - 1) | st.sampled_from([0, 1, 2, 3, 181, 65535, 65536])),
            data.draw(st.integers(0, max_frac)),
            data.draw(st.integers(1, 10)),
        )
        for _ in range(20)
    ]
    fresh_block()
    p, frac, bits = pyrtl.Input(width, "p"), pyrtl.Input(8, "frac"), pyrtl.Input(8, "bits")
    out = pyrtl.Output(max_frac + 1, "out")
    out <<= log2_quantizer(p, frac, bits, max_frac)
    sim = pyrtl.FastSimulation()
    for value, f, b in cases:
        sim.step({"p": value, "frac": f, "bits": b})
        want = int(log2_codes(torch.tensor([value]), f, b)[0])
        assert sim.inspect("out") == want, (value, f, b)


def test_units_are_per_format() -> None:
    a = Descriptor("x", 2, m=1, n=4, in_bits=16, in_frac=14, out_bits=16, out_frac=10)
    b = replace(a, variant=1)
    c = replace(a, out_frac=9)
    assert program_units([a, b, a, c]) == (
        ("layernorm", "poly", IntSpec(16, 14, 16, 10)),
        ("layernorm", "shift", IntSpec(16, 14, 16, 10)),
        ("layernorm", "poly", IntSpec(16, 14, 16, 9)),
    )


@pytest.mark.parametrize(
    ("lanes", "data_bits", "latency"),
    [
        (1, 64, 3),
        pytest.param(3, 128, 20, marks=pytest.mark.slow),
        pytest.param(4, 256, 8, marks=pytest.mark.slow),
    ],
)
def test_any_lanes_and_bus_take_the_rows_in_groups(
    programs: dict[str, Program], lanes: int, data_bits: int, latency: int
) -> None:
    """Rows in groups of ``lanes`` with a short last group (34 softmax rows, 17 LayerNorm rows)."""
    program = programs["W4A8P0.5"]
    spec = NlOpSpec.from_descriptors(program.descriptors, lanes=lanes, data_bits=data_bits)
    for name in ("blocks.0.attn.softmax", "blocks.1.norm1"):
        d = next(x for x in program.descriptors if x.name == name)
        image, d = byte_aligned(random_input(program.image(), d, lanes, 1 << 15), d)
        want = image.copy()
        nonlinear_op(want, d)
        run = simulate_nl_op(spec, image, d, latency_cycles=latency)
        assert not run.error
        assert np.array_equal(run.image, want), name


def test_the_unit_exports_verilog(programs: dict[str, Program]) -> None:
    fresh_block()
    build_nl_op(NlOpSpec.from_descriptors(programs["W4A8P0.5"].descriptors, lanes=1))
    text = working_block_verilog("codesign_nl_op")
    assert "module codesign_nl_op" in text
    for port in ("done", "error", "m_awvalid", "m_arvalid", "d_out_frac"):
        assert port in text


def test_ops_run_back_to_back_on_one_unit(programs: dict[str, Program]) -> None:
    """One unit runs a block's non-linear ops one after another (each op's state starts afresh);
    a refused op between them leaves the next one unharmed."""
    program = programs["W8A8"]
    spec = NlOpSpec.from_descriptors(program.descriptors)
    names = ("blocks.1.norm1", "blocks.1.attn.softmax", "blocks.1.mlp.act", "norm")
    ops = [next(x for x in program.descriptors if x.name == name) for name in names]
    image = program.image()
    for i, d in enumerate(ops):
        image = random_input(image, d, 10 + i, 1 << 14)
    bad = replace(ops[0], in_frac=3)
    run = simulate_nl_op(spec, image, [ops[0], ops[1], bad, ops[2], ops[3]])
    assert run.error and len(run.dones) == 5
    want = image.copy()
    for d in ops:  # each reads what the ones before wrote where they overlap
        nonlinear_op(want, d)
    assert np.array_equal(run.image, want)


def test_each_kind_takes_its_rows_in_groups_of_its_own_lanes(programs: dict[str, Program]) -> None:
    """A design's ``nonlinear_kind_lanes``: softmax on 3 lanes, LayerNorm on 1, GELU on the
    default 2, in one build (3 lanes built). Each op is bit-exact and takes the cycles it takes
    on a build whose every unit has that kind's lanes."""
    program = programs["W8A8"]
    mixed = NlOpSpec.from_descriptors(program.descriptors, kind_lanes={"softmax": 3, "layernorm": 1})
    assert (mixed.built_lanes, mixed.lanes_of("softmax"), mixed.lanes_of("gelu")) == (3, 3, 2)
    for name, lanes in (("blocks.1.attn.softmax", 3), ("blocks.1.norm1", 1), ("blocks.1.mlp.act", 2)):
        d = next(x for x in program.descriptors if x.name == name)
        image, d = byte_aligned(random_input(program.image(), d, lanes, 1 << 14), d)
        want = image.copy()
        nonlinear_op(want, d)
        run = simulate_nl_op(mixed, image, d)
        assert not run.error and np.array_equal(run.image, want), name
        uniform = simulate_nl_op(NlOpSpec.from_descriptors(program.descriptors, lanes=lanes), image, d)
        assert run.dones == uniform.dones, name
