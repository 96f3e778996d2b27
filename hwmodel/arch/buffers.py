"""On-chip buffer mapping to block RAM (BRAM36 units, RAMB18 halves count 0.5) or LUT RAM.

A buffer bank is ``depth_words`` × ``width_bits`` with one write and one registered read port.
Block RAM: the cheapest arrangement of one aspect ratio (simple dual port: RAMB36 up to 512×72,
RAMB18 up to 512×36), ⌈width / w⌉ · ⌈depth / d⌉ primitives of geometry (d × w).

Small banks go to distributed (LUT) RAM instead, as Yosys's ``memory_libmap`` decides it: each
option is priced with the costs of Yosys's Xilinx memory library (``brams_xc4v.txt``: RAMB18 129,
RAMB36 257; ``lutrams_xcu.txt`` / ``lutrams_xc5v.txt``: a simple-dual-port LUT RAM costs a fixed
part per primitive plus a ``widthscale`` part scaled by the share of its width used, per depth
slice of 2^abits words, plus ½ per read-mux input beyond the first and ½ per write-enable
decode output) and the cheaper one is built. A LUT RAM bank also needs a read mux across its
depth slices, a write-enable decode and the read data register in fabric.
``python -m hwmodel.validate`` checks this mapping against Yosys's own on a committed grid
(``calibration/memory_table.csv``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from hwmodel.arch.bits import bits_for

#: (depth, width) aspect ratios of one RAMB36 in simple-dual-port mode.
BRAM36_GEOMETRIES: tuple[tuple[int, int], ...] = (
    (32768, 1),
    (16384, 2),
    (8192, 4),
    (4096, 9),
    (2048, 18),
    (1024, 36),
    (512, 72),
)
#: (depth, width) aspect ratios of one RAMB18 (half a BRAM36 tile).
BRAM18_GEOMETRIES: tuple[tuple[int, int], ...] = (
    (16384, 1),
    (8192, 2),
    (4096, 4),
    (2048, 9),
    (1024, 18),
    (512, 36),
)


def _primitives(depth_words: int, width_bits: int, geometry: tuple[int, int]) -> int:
    depth, width = geometry
    return -(-width_bits // width) * -(-depth_words // depth)


#: Yosys memory-library costs of one RAMB18 / RAMB36 (``brams_xc4v.txt``, all 7-series+ families).
BRAM18_COST = 129.0
BRAM36_COST = 257.0
#: Yosys's cost of one read-mux input or write-enable decode output (``FACTOR_MUX``/``FACTOR_DEMUX``).
MUX_COST = 0.5


@dataclass(frozen=True)
class LutramLibrary:
    """A family's simple-dual-port LUT RAM primitives as Yosys prices them."""

    primitive_cost: float
    #: the part of ``primitive_cost`` that scales with the share of the primitive's width used
    widthscale: float
    #: (address bits, data bits) of each depth option, e.g. RAM32M16 = 32 × 14, RAM64M8 = 64 × 7.
    options: tuple[tuple[int, int], ...]
    luts_per_primitive: int


_ULTRASCALE = LutramLibrary(16.0, 16.0, ((5, 14), (6, 7)), 8)  # RAM32M16, RAM64M8 (lutrams_xcu.txt)
#: Per Yosys family (``Device.synth_family``); a family not listed maps every bank to block RAM.
LUTRAM_LIBRARIES: dict[str, LutramLibrary] = {
    "xcup": _ULTRASCALE,
    "xcu": _ULTRASCALE,
    "xc7": LutramLibrary(8.0, 7.0, ((5, 6), (6, 3)), 4),  # RAM32M, RAM64M (lutrams_xc5v.txt)
}


@dataclass(frozen=True)
class BankMemory:
    """How one bank is built: BRAM36 tiles, or LUT RAM primitives with their fabric."""

    bram36: float
    lutram_primitives: int = 0
    lut: int = 0
    ff: int = 0


def _bram_choice(depth_words: int, width_bits: int) -> tuple[float, float]:
    """(BRAM36 tiles, Yosys cost) of the cheapest block-RAM arrangement of one bank."""
    full = min(_primitives(depth_words, width_bits, g) for g in BRAM36_GEOMETRIES)
    halves = min(_primitives(depth_words, width_bits, g) for g in BRAM18_GEOMETRIES)
    if BRAM18_COST * halves <= BRAM36_COST * full:
        return 0.5 * halves, BRAM18_COST * halves
    return float(full), BRAM36_COST * full


def _lutram_choice(depth_words: int, width_bits: int, lib: LutramLibrary) -> tuple[BankMemory, float]:
    """The LUT RAM build of one bank and its Yosys cost (depth rounded up to a power of two)."""
    abits = bits_for(depth_words)
    unit_abits, unit_width = next(((a, w) for a, w in lib.options if a >= abits), lib.options[-1])
    slices = 2 ** max(abits - unit_abits, 0)  # depth slices, each a column of primitives
    primitives = slices * -(-width_bits // unit_width)
    write_decode = slices if slices > 1 else 0
    cost = (
        (lib.primitive_cost - lib.widthscale) * primitives
        + lib.widthscale * slices * width_bits / unit_width
        + MUX_COST * ((slices - 1) * width_bits + write_decode)
    )
    read_mux = width_bits * math.ceil((slices - 1) / 3)  # a LUT6 selects among 4 slices
    lut = primitives * lib.luts_per_primitive + read_mux + write_decode
    return BankMemory(0.0, primitives, lut, width_bits), cost


@lru_cache(maxsize=4096)
def bank_memory(depth_words: int, width_bits: int, synth_family: str) -> BankMemory:
    """How one ``depth_words`` × ``width_bits`` bank is built on a ``synth_family`` device (``xcup``)."""
    if depth_words <= 0 or width_bits <= 0:
        return BankMemory(0.0)
    bram36, bram_cost = _bram_choice(depth_words, width_bits)
    lib = LUTRAM_LIBRARIES.get(synth_family)
    if lib is not None:
        lutram, lutram_cost = _lutram_choice(depth_words, width_bits, lib)
        if lutram_cost < bram_cost:
            return lutram
    return BankMemory(bram36)


@dataclass(frozen=True)
class Buffer:
    """A banked, optionally double-buffered on-chip buffer."""

    name: str
    banks: int
    depth_words: int
    width_bits: int
    double_buffered: bool = True

    @property
    def bits(self) -> int:
        copies = 2 if self.double_buffered else 1
        return copies * self.banks * self.depth_words * self.width_bits

    def memory(self, synth_family: str) -> BankMemory:
        """The whole buffer (all banks and copies) on a ``synth_family`` device (``Device.synth_family``)."""
        n = (2 if self.double_buffered else 1) * self.banks
        one = bank_memory(self.depth_words, self.width_bits, synth_family)
        return BankMemory(n * one.bram36, n * one.lutram_primitives, n * one.lut, n * one.ff)
