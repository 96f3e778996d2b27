"""The accelerator program: descriptor encoding, compilation of an integer model, its reference
execution on a DRAM image (bit-exact against the integer model) and the host driver."""

from __future__ import annotations

import itertools
import json
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_integer import config
from test_quant_model import tiny_vit
from torch import nn

from codesign.errors import UserError
from codesign.program import MemoryFault, Program, compile_program, execute
from codesign.program._compile import granule, write_program
from codesign.program.driver import Accelerator, ProgramFiles, ReferenceDevice
from codesign.quant import Calibration, QuantConfig, quantize_integer_model
from codesign.quant._integer import IntegerViT
from hwmodel.arch.config import AcceleratorConfig, LayerHw
from hwmodel.arch.controller import NL_MODES
from hwmodel.arch.dma import Window, check_write_alignment
from hwmodel.arch.program import (
    ALIGN_BYTES,
    DESCRIPTOR_BYTES,
    FIELDS,
    HEADER_BYTES,
    OPCODES,
    OPERANDS,
    Descriptor,
    Operand,
    decode_program,
    encode_program,
    field_offsets,
    pack_codes,
    packed_bytes,
    read_operand,
    write_operand,
)
from hwmodel.model.default import default_config
from hwmodel.model.evaluation import DesignReport, evaluate
from hwmodel.target.device import load_device
from hwmodel.target.workload import workload_from_model

# ----------------------------------------------------------------------------- the format

_RANGES = {"B": (0, 255), "H": (0, 65535), "I": (0, 2**32 - 1), "i": (-(2**31), 2**31 - 1)}
_CODES = dict(FIELDS) | {f"{op}_{f}": c for op in OPERANDS for f, c in (("addr", "I"), ("bytes", "B"))}


@st.composite
def descriptors(draw: st.DrawFn) -> Descriptor:
    def value(name: str) -> int:
        lo, hi = _RANGES[_CODES.get(name, "I")]
        return draw(st.integers(lo, hi))

    operands = {
        op: Operand(value(f"{op}_addr"), value("m"), value("n"), draw(st.sampled_from((1, 2, 4, 8))))
        for op in OPERANDS
    }
    scalars = {
        name: value(name)
        for name, _ in FIELDS
        if name != "opcode" and not any(name.startswith(f"{op}_") for op in OPERANDS)
    }
    return Descriptor("op", draw(st.sampled_from(sorted(set(OPCODES.values()) - {0}))), **scalars, **operands)


BITS = st.integers(1, 64)


@settings(max_examples=60, deadline=None)
@given(BITS, st.booleans(), st.integers(0, 9), st.data())
def test_packed_operands_round_trip_and_leave_other_bits(
    bits: int, signed: bool, addr: int, data: st.DataObject
) -> None:
    """An operand written then read gives its codes back; every DRAM bit outside it is kept."""
    if bits == 64:
        signed = True
    heads, rows, cols = (
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 5)),
    )
    row_stride = cols + data.draw(st.integers(0, 3))
    op = Operand(addr, row_stride, rows * row_stride + data.draw(st.integers(0, 2)), bits, int(signed))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    values = np.array(
        data.draw(st.lists(st.integers(lo, hi), min_size=heads * rows * cols, max_size=heads * rows * cols)),
        dtype=np.int64,
    ).reshape(heads, rows, cols)
    size = addr + packed_bytes(heads * op.head_stride + 8, bits) + 8
    mem = np.frombuffer(bytes(data.draw(st.binary(min_size=size, max_size=size))), dtype=np.uint8).copy()
    before = np.unpackbits(mem, bitorder="little")
    write_operand(mem, op, values)
    assert np.array_equal(read_operand(mem, op, (heads, rows, cols)), values)
    covered = np.zeros(before.size, dtype=bool)
    for h in range(heads):
        for r in range(rows):
            start = 8 * addr + (h * op.head_stride + r * row_stride) * bits
            covered[start : start + cols * bits] = True
    assert np.array_equal(np.unpackbits(mem, bitorder="little")[~covered], before[~covered])


def test_codes_pack_as_a_little_endian_bit_stream() -> None:
    assert pack_codes([-4, -3, -2, -1, 0, 1, 2, 3], 3).tolist() == [0b10101100, 0b10001111, 0b01101000]
    with pytest.raises(ValueError, match="outside 3 bits"):
        pack_codes([8], 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(descriptors(), min_size=1, max_size=4))
def test_descriptors_round_trip_through_the_binary(ops: list[Descriptor]) -> None:
    raw = encode_program(ops)
    assert len(raw) == HEADER_BYTES + (len(ops) + 1) * DESCRIPTOR_BYTES
    back = decode_program(raw)
    assert [d.values() for d in back] == [d.values() for d in ops]


def test_field_offsets_tile_the_descriptor() -> None:
    offsets = field_offsets()
    assert [name for name, _ in FIELDS] == list(offsets)
    at = 0
    for name, (offset, size) in offsets.items():
        assert offset == at, name
        at += size
    assert at <= DESCRIPTOR_BYTES and DESCRIPTOR_BYTES % ALIGN_BYTES == 0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda raw: b"NOTAPROG" + raw[8:], "bad magic"),
        (lambda raw: raw[: HEADER_BYTES + DESCRIPTOR_BYTES // 2], "truncated"),
        (lambda raw: raw[:10], "shorter than its header"),
        (lambda raw: raw[:12] + struct.pack("<I", 1) + raw[16:], "no end descriptor"),
    ],
)
def test_a_bad_program_is_refused(mutate: object, match: str) -> None:
    raw = encode_program([Descriptor("x", OPCODES["gelu"]), Descriptor("y", OPCODES["gemm"])])
    with pytest.raises(ValueError, match=match):
        decode_program(mutate(raw))  # type: ignore[operator]


# ----------------------------------------------------------------------------- compile and run

CONFIGS = {
    "W8A8 poly": config("W8A8"),
    "W4A8P0.5 shift log2": config("W4A8P0.5", "shift", "log2"),
    "mixed": config("W8A8").with_layers(
        {"blocks.0.mlp.fc1": "W4A8P0.25", "head": "W6A6", "blocks.1.attn.qkv": "W5A7"}
    ),
    # activations whose rows (17 tokens) and heads (12 columns) do not fill whole bytes
    "W8A6 mixed": config("W8A6").with_layers({"blocks.1.attn.qkv": "W8A8", "blocks.0.mlp.fc2": "W4A7"}),
    "W4A5 mixed": config("W4A5").with_layers({"blocks.0.attn.proj": "W4A7", "blocks.1.mlp.fc1": "W6A6"}),
}


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_vit()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def integer(model: nn.Module, images: torch.Tensor) -> dict[str, IntegerViT]:
    calib = Calibration(model, images)
    return {name: quantize_integer_model(model, cfg, calib) for name, cfg in CONFIGS.items()}


#: Designs whose tiles the programs carry: none, 8 × 16 tiles, the default design, 5 × 5 tiles
#: (edges inside rows at 5-column steps: the codes of Q, K, V, attention and GELU outputs stored wider).
DESIGNS = ("no report", "tm 8", "default", "tiles 5")


@pytest.fixture(scope="module")
def reports(model: nn.Module) -> dict[str, DesignReport | None]:
    workload = workload_from_model(model)
    device = load_device("zcu102")

    accels = {
        "tm 8": AcceleratorConfig(freq_mhz=200, rows=8, cols=16, default=LayerHw(tm=8, tn=16, tk=16)),
        "default": default_config(workload, device),
        "tiles 5": AcceleratorConfig(freq_mhz=200, rows=4, cols=4, default=LayerHw(tm=5, tn=5, tk=16)),
    }
    out: dict[str, DesignReport | None] = {"no report": None}
    out.update({name: evaluate(workload, accel, device, detail=True) for name, accel in accels.items()})
    return out


def run_program(program: Program, rows: torch.Tensor) -> torch.Tensor:
    mem = program.image()
    inp, out = program.region("input"), program.region("logits")
    results = []
    for r in rows:
        write_operand(mem, inp.operand(), r.numpy()[None])
        assert execute(mem) == len(program.descriptors)
        results.append(read_operand(mem, out.operand(), (1, *out.shape)).reshape(-1))
    return torch.from_numpy(np.stack(results))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_program_is_bit_exact_against_the_integer_model(
    name: str, integer: dict[str, IntegerViT], images: torch.Tensor
) -> None:
    im = integer[name]
    program = compile_program(im)
    got = run_program(program, im.patches(im.codes(images)))
    assert torch.equal(got, im.accumulators(images))


def test_the_program_has_one_descriptor_per_workload_op(
    model: nn.Module, integer: dict[str, IntegerViT]
) -> None:
    workload = workload_from_model(model)
    program = compile_program(integer["W8A8 poly"])
    assert [d.name for d in program.descriptors] == [op.name for op in workload.ops]
    for d, op in zip(program.descriptors, workload.ops, strict=True):
        kind = "gemm" if hasattr(op, "k") else op.kind
        assert d.kind == kind, op.name


def test_the_gemms_carry_the_designs_tiles(model: nn.Module, integer: dict[str, IntegerViT]) -> None:
    workload = workload_from_model(model)
    accel = AcceleratorConfig(freq_mhz=200, rows=8, cols=16, default=LayerHw(tm=8, tn=16, tk=16))
    report = evaluate(workload, accel, load_device("zcu102"), detail=True)
    program = compile_program(integer["W8A8 poly"], report)
    layers = {layer.name: layer for layer in report.layers}
    gemms = [d for d in program.descriptors if d.kind == "gemm"]
    assert {d.name for d in gemms} <= set(layers)
    for d in gemms:
        layer = layers[d.name]
        assert (d.tm, d.tn, d.tk) == (min(layer.tm, layer.m), min(layer.tn, layer.n), min(layer.tk, layer.k))
        assert d.has(4) == layer.transposed  # F_TRANSPOSED


@pytest.mark.parametrize("design", ["default", "tm 8"])
def test_the_gemms_carry_the_models_schedule(
    design: str, model: nn.Module, integer: dict[str, IntegerViT], tmp_path: Path
) -> None:
    workload = workload_from_model(model)
    device = load_device("zcu102")
    accel = AcceleratorConfig(freq_mhz=200, rows=8, cols=16, default=LayerHw(tm=8, tn=16, tk=16))
    accel = default_config(workload, device) if design == "default" else accel
    report = evaluate(workload, accel, device, detail=True)
    program = compile_program(integer["W8A8 poly"], report)
    write_program(tmp_path, program)
    readable = {op["name"]: op for op in json.loads((tmp_path / "program.json").read_text())["ops"]}
    layers = {layer.name: layer for layer in report.layers}
    seen = set()
    for d, named in zip(decode_program(program.encoded()), program.descriptors, strict=True):  # as read
        layer = layers[named.name]
        seen.add(layer.name)
        wait = (layer.wait, layer.wait_index) if layer.wait != "none" else None
        want = (layer.nl_mode, layer.deferred, wait) if d.kind == "gemm" else ("none", False, None)
        assert d.schedule() == want, layer.name
        op = readable[layer.name]
        assert op.get("nl_mode", "none") == layer.nl_mode
        assert ("deferred" in op.get("flags", [])) == layer.deferred
        assert (op.get("wait", "none"), op.get("wait_idx", 0)) == (layer.wait, layer.wait_index)
    assert seen == set(layers)
    modes = {layer.nl_mode for layer in report.layers}
    assert {"row", "tile"} <= modes and any(layer.deferred for layer in report.layers)
    if design == "tm 8":
        assert {"m", "head"} <= {layer.wait for layer in report.layers}


def test_a_schedule_code_outside_the_tables_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the tables"):
        Descriptor("x", OPCODES["gemm"], nl_mode=len(NL_MODES)).schedule()
    assert Descriptor("x", OPCODES["gemm"], wait=9, wait_idx=3).to_dict()["wait"] == 9


def test_the_regions_are_aligned_and_disjoint(integer: dict[str, IntegerViT]) -> None:
    program = compile_program(integer["mixed"])
    regions = sorted(program.regions, key=lambda r: r.addr)
    assert regions[0].name == "program" and regions[0].addr == 0
    for a, b in itertools.pairwise(regions):
        assert a.addr % ALIGN_BYTES == 0 and a.end <= b.addr, (a.name, b.name)
    params = {r.name for r in regions if r.role == "param"}
    assert params == set(program.params)


def test_an_access_outside_the_image_is_a_fault(integer: dict[str, IntegerViT]) -> None:
    program = compile_program(integer["W8A8 poly"])
    mem = program.image()[: program.region("logits").addr]  # DRAM too small for the logits
    with pytest.raises(MemoryFault, match="outside"):
        execute(mem)


# ----------------------------------------------------------------------------- write alignment


def output_windows(program: Program) -> list[tuple[str, Operand, list[Window]]]:
    """Per op, each output operand and the windows the accelerator writes to it: a GEMM's output
    tiles (``tm`` × ``tn`` of C, in either orientation) cut at its segments, per head; a
    non-linear op's whole rows, or GELU's the tiles of a GEMM that hands it each tile."""
    out: list[tuple[str, Operand, list[Window]]] = []
    prev: Descriptor | None = None
    for d in program.descriptors:
        if d.kind == "gemm":
            tm, tn = d.tm or d.m, d.tn or d.n
            seg = d.seg_cols if d.segments > 1 else d.n
            for s in range(d.segments):
                wins = [
                    Window(
                        h,
                        r0,
                        min(tm, d.m - r0),
                        max(c0, s * seg) - s * seg,
                        min(c0 + tn, (s + 1) * seg) - max(c0, s * seg),
                    )
                    for h in range(d.repeat)
                    for r0 in range(0, d.m, tm)
                    for c0 in range(0, d.n, tn)
                    if max(c0, s * seg) < min(c0 + tn, (s + 1) * seg)
                ]
                out.append((d.name, d.output(s)[0], wins))
        elif prev is not None and prev.kind == "gemm" and prev.schedule()[0] == "tile":
            tm, tn = prev.tm or prev.m, prev.tn or prev.n
            wins = [
                Window(0, r0, min(tm, d.m - r0), c0, min(tn, d.n - c0))
                for r0 in range(0, d.m, tm)
                for c0 in range(0, d.n, tn)
            ]
            out.append((d.name, d.c, wins))
        else:
            out.append((d.name, d.c, [Window(0, 0, d.m, 0, d.n)]))
        prev = d
    return out


def whole_bytes(op: Operand, win: Window) -> Window:
    """The window as the writer writes it: its columns rounded up to whole bytes (the codes past
    its end are the row's padding)."""
    step = granule(op.bits)
    return replace(win, cols=-(-(win.col0 + win.cols) // step) * step - win.col0)


def codes(op: Operand, win: Window) -> set[int]:
    """The stream positions (in codes from the operand's address) of a window's codes."""
    return {
        win.head * op.head_stride + (win.row0 + r) * op.row_stride + win.col0 + c
        for r in range(win.rows)
        for c in range(win.cols)
    }


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_window_the_accelerator_writes_is_byte_aligned(
    name: str, design: str, integer: dict[str, IntegerViT], reports: dict[str, DesignReport | None]
) -> None:
    """Every output window, rounded up to whole bytes, passes the DMA writer's check, and the codes
    the rounding adds are no codes of the op's output (padding), inside the output's region."""
    program = compile_program(integer[name], reports[design])
    regions = sorted(program.regions, key=lambda r: r.addr)
    seen = 0
    for op_name, op, wins in output_windows(program):
        region = next(r for r in reversed(regions) if r.addr <= op.addr)
        written = set().union(*(codes(op, w) for w in wins))
        for win in wins:
            whole = whole_bytes(op, win)
            check_write_alignment(op, whole)
            padding = codes(op, whole) - codes(op, win)
            assert not padding & written, (op_name, win)
            assert 8 * op.addr + (max(codes(op, whole)) + 1) * op.bits <= 8 * region.end, (op_name, win)
            seen += 1
    assert seen > len(program.descriptors)


def test_rows_the_writer_could_not_write_are_padded(integer: dict[str, IntegerViT]) -> None:
    """W8A6: the softmax's 17 codes × 6 bits (102 bits) a row become 20 codes (15 bytes); W4A5:
    attn.sv's heads of 12 5-bit codes (60 bits) are stored at 6 bits (7-bit ones at 8); the
    regions and ``program.json`` size them so."""
    p = compile_program(integer["W8A6 mixed"]).region("p")
    assert (p.shape, p.bits, p.row_stride, p.nbytes) == ((2, 17, 17), 6, 20, 2 * 17 * 15)
    assert p.to_dict() | {"addr": 0} == {
        "name": "p",
        "addr": 0,
        "bytes": 510,
        "shape": [2, 17, 17],
        "row_stride": 20,
        "bits": 6,
        "signed": False,
        "role": "scratch",
    }
    program = compile_program(integer["W4A5 mixed"])
    ops = {d.name: d for d in program.descriptors}
    # proj reads 7-bit codes in block 0 (stored at 8), 5-bit ones in block 1 (stored at 6)
    assert [(ops[f"blocks.{i}.attn.sv"].c.bits, ops[f"blocks.{i}.attn.proj"].in_bits) for i in (0, 1)] == [
        (8, 7),
        (6, 5),
    ]
    assert ops["blocks.1.attn.sv"].c.head_stride == 12 and ops["blocks.1.attn.proj"].a.bits == 6
    assert program.region("p").row_stride == 24  # 5-bit codes: a granule of 8
    for r in program.regions:
        assert r.nbytes == packed_bytes(int(np.prod(r.shape[:-1])) * r.row_stride, r.bits), r.name
        if r.role == "scratch":
            assert r.row_stride % granule(r.bits) == 0 and r.row_stride - r.shape[-1] < granule(r.bits)


@pytest.mark.parametrize(("name", "design"), [("W4A5 mixed", "tiles 5"), ("W8A6 mixed", "default")])
def test_a_padded_and_widened_layout_is_bit_exact(
    name: str,
    design: str,
    integer: dict[str, IntegerViT],
    reports: dict[str, DesignReport | None],
    images: torch.Tensor,
) -> None:
    im = integer[name]
    program = compile_program(im, reports[design])
    widened = [d.name for d in program.descriptors if d.kind == "gemm" and d.a.bits > d.in_bits]
    assert bool(widened) == (design == "tiles 5")  # 5-column tiles: A codes stored wider
    got = run_program(program, im.patches(im.codes(images)))
    assert torch.equal(got, im.accumulators(images))


# ----------------------------------------------------------------------------- the driver


def test_the_driver_runs_the_exported_files(
    tmp_path: Path, integer: dict[str, IntegerViT], images: torch.Tensor
) -> None:
    im = integer["W4A8P0.5 shift log2"]
    write_program(tmp_path, compile_program(im, model="tiny"))
    doc = json.loads((tmp_path / "program.json").read_text())
    assert doc["model"] == "tiny" and len(doc["ops"]) == len(im.blocks) * 10 + 3
    acc = Accelerator(ProgramFiles.read(tmp_path))
    assert np.array_equal(acc.accumulators(images), im.accumulators(images).numpy())
    logits = torch.from_numpy(acc.infer(images)).float()
    assert torch.equal(logits, im(images))


def test_the_driver_reports_a_fault_in_one_line(tmp_path: Path, integer: dict[str, IntegerViT]) -> None:
    write_program(tmp_path, compile_program(integer["W8A8 poly"]))
    files = ProgramFiles.read(tmp_path)
    device = ReferenceDevice(int(files.doc["dram_bytes"]))
    acc = Accelerator(files, device)
    device.mem[:HEADER_BYTES] = 0  # the program's header gone
    with pytest.raises(UserError, match="fault"):
        acc.accumulators(torch.zeros(1, 1, 28, 28))


def test_missing_program_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no program\.json, program\.bin, params\.bin"):
        ProgramFiles.read(tmp_path)


def test_a_float_design_has_no_program(model: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(UserError, match="nonlinear: int"):
        quantize_integer_model(model, QuantConfig.uniform("W8A8"), Calibration(model, images))
