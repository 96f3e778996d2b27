"""On-chip buffer mapping to block RAM (BRAM36 units, RAMB18 halves count 0.5).

A buffer bank is ``depth_words`` × ``width_bits``; it is built from the cheapest arrangement of one
aspect ratio of block RAM (simple dual port: RAMB36 up to 512×72, RAMB18 up to 512×36), the way
Vivado/Yosys infer it: ⌈width / w⌉ · ⌈depth / d⌉ primitives of geometry (d × w).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def bank_bram36(depth_words: int, width_bits: int) -> float:
    """BRAM36 tiles of one bank (0.5 steps: a bank that fits RAMB18s uses halves)."""
    if depth_words <= 0 or width_bits <= 0:
        return 0.0
    full = min(_primitives(depth_words, width_bits, g) for g in BRAM36_GEOMETRIES)
    halves = min(_primitives(depth_words, width_bits, g) for g in BRAM18_GEOMETRIES)
    return min(float(full), 0.5 * halves)


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

    @property
    def bram36(self) -> float:
        copies = 2 if self.double_buffered else 1
        return copies * self.banks * bank_bram36(self.depth_words, self.width_bits)
