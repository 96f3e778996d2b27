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

from codesign.program import Program, compile_program
from codesign.program._execute import gemm_epilogue
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
from hwmodel.rtl.epilogue import EpilogueSpec, Tile, simulate_epilogue
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
    cycles = check(spec, image, d, accumulators(d, 2), tiles, stall=0.2, seed=3)
    print(name, len(tiles), "tiles", cycles, "cycles")
