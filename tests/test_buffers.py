"""Buffer banks: block RAM or LUT RAM, as Yosys's memory library would build them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodel.arch.buffers import LUTRAM_LIBRARIES, Buffer, bank_memory
from hwmodel.target.device import FAMILIES, known_devices, load_device

BRAM36_BITS = 36 * 1024
depths = st.integers(1, 20000)
widths = st.integers(1, 128)


@pytest.mark.parametrize("name", known_devices())
def test_every_device_family_has_a_lut_ram_library(name: str) -> None:
    assert load_device(name).synth_family in LUTRAM_LIBRARIES


def test_every_known_family_has_a_lut_ram_library() -> None:
    assert {synth for synth, _ in FAMILIES.values()} == set(LUTRAM_LIBRARIES)


@settings(max_examples=300, deadline=None)
@given(depths, widths, st.sampled_from(sorted(LUTRAM_LIBRARIES)))
def test_a_bank_is_block_ram_or_lut_ram_and_holds_its_bits(depth: int, width: int, family: str) -> None:
    mem = bank_memory(depth, width, family)
    assert (mem.bram36 > 0) != (mem.lutram_primitives > 0)
    if mem.bram36:
        assert mem.bram36 * BRAM36_BITS >= depth * width and mem.lut == mem.ff == 0
    else:
        lib = LUTRAM_LIBRARIES[family]
        per_primitive = max(2**abits * w for abits, w in lib.options)
        assert mem.lutram_primitives * per_primitive >= depth * width
        assert mem.lut >= mem.lutram_primitives * lib.luts_per_primitive and mem.ff == width


@settings(max_examples=200, deadline=None)
@given(depths, st.integers(4, 128))
def test_deep_banks_of_four_bits_or_more_use_block_ram(depth: int, width: int) -> None:
    """Beyond 512 words a LUT RAM bank of ≥ 4 bits is never cheaper (RAMB18 holds 512 × 36);
    narrower banks stay in LUT RAM deeper, as Yosys builds them (``memory_table.csv``)."""
    for family in LUTRAM_LIBRARIES:
        mem = bank_memory(max(depth, 513), width, family)
        assert mem.lutram_primitives == 0 and mem.bram36 > 0


def test_unknown_family_maps_every_bank_to_block_ram() -> None:
    assert bank_memory(16, 8, "virtex2") == bank_memory(512, 8, "xcup")


def test_buffer_counts_banks_and_copies() -> None:
    one = bank_memory(1024, 8, "xc7")
    double = Buffer("b", banks=4, depth_words=1024, width_bits=8).memory("xc7")
    single = Buffer("b", banks=4, depth_words=1024, width_bits=8, double_buffered=False).memory("xc7")
    assert double.bram36 == 2 * single.bram36 == 8 * one.bram36
