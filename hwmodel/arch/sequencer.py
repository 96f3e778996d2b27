"""The layer sequencer's schedule: when each op of a program starts and when the run ends, in
cycles from the host's start write (cycle 0), as :mod:`hwmodel.rtl.sequencer` runs it.

The sequencer fetches the header (``Hb`` beats) and then each descriptor (``Db`` beats) over an
AXI4 read channel whose answers come ``dram_latency`` cycles after the address, one beat a cycle,
into a one-descriptor prefetch buffer; it dispatches a fetched descriptor when the previous op is
done. With ``L`` the latency: descriptor 0 is fetched by ``H_0 = 2L + Hb + Db + 2``; op i is
dispatched at ``X_i = max(H_i, done_{i−1})``, starts at ``X_i + 1`` and is done at
``X_i + 1 + c_i``; descriptor i + 1 is fetched by ``H_{i+1} = X_i + L + Db + 2`` (its fetch starts
once the buffer is emptied). The run ends at ``max(H_end, done_last)`` (the ``end`` descriptor)
and ``CYCLES`` reads that count. So an op that lasts at least ``L + Db + 1`` cycles hides the
next fetch and its successor starts in the cycle after its ``done``
(:data:`hwmodel.arch.controller.CHAIN_GAP`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hwmodel.arch.program import DESCRIPTOR_BYTES, HEADER_BYTES


def beats(nbytes: int, data_bits: int) -> int:
    """AXI beats of ``nbytes`` on a ``data_bits`` bus."""
    return -(-nbytes * 8 // data_bits)


@dataclass(frozen=True)
class SequencerSchedule:
    """Op start and done cycles, and the run's length (the ``CYCLES`` register)."""

    starts: tuple[int, ...]
    dones: tuple[int, ...]
    cycles: int


def sequencer_schedule(op_cycles: Sequence[int], data_bits: int, dram_latency: int) -> SequencerSchedule:
    """The schedule of ops lasting ``op_cycles`` (≥ 1 each; module docstring)."""
    lat, hb, db = dram_latency, beats(HEADER_BYTES, data_bits), beats(DESCRIPTOR_BYTES, data_bits)
    fetched = 2 * lat + hb + db + 2
    done = -1
    starts: list[int] = []
    dones: list[int] = []
    for c in op_cycles:
        dispatch = max(fetched, done)
        starts.append(dispatch + 1)
        done = dispatch + 1 + max(1, c)
        dones.append(done)
        fetched = dispatch + lat + db + 2
    return SequencerSchedule(tuple(starts), tuple(dones), max(fetched, done))
