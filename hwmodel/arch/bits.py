"""Widths of counters and addresses: the one rule every part (RTL, cycles, cost) sizes them by."""

from __future__ import annotations


def bits_for(count: int) -> int:
    """Bits of an unsigned counter or address that takes ``count`` distinct values (at least 1)."""
    return max(1, (count - 1).bit_length())
