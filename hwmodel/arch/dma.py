"""The tile DMA's timing (:mod:`hwmodel.rtl.dma`): which AXI4 bursts a tile transfer issues and
the cycles from its ``start`` to its ``done``, exactly as the RTL runs them against the testbench
DRAM (:func:`dram_beat_cycle`).

A transfer moves a *window* (:class:`Window`: head ``h``, rows ``r0 … r0+rows−1``, columns
``c0 … c0+cols−1``) of a bit-packed operand (:class:`hwmodel.arch.program.Operand`). Each window
row is ``cols·bits`` contiguous stream bits from bit ``S_r = 8·addr + (h·hs + (r0+r)·rs + c0)·bits``;
it is fetched on its own as the beats that hold it (``data_bits`` per beat, aligned: beat index
``⌊S_r / data_bits⌋`` to ``⌊(S_r + cols·bits − 1) / data_bits⌋``), cut into INCR bursts of at
most ``max_burst`` beats that never cross a 4 KiB boundary (:func:`bursts`).

**Reader timing** (cycle 0: the ``start`` pulse; the DRAM answers a burst's address ``L`` cycles
later, one beat a cycle at most, and never more than ``B`` bytes by cycle ``t`` — beat ``k`` of
the transfer no earlier than ``⌈(k+1)·beat_bytes / B⌉``, :func:`dram_beat_cycle`): burst ``i``'s
address goes out at ``a_i = max(a_{i−1} + 1, R_{i−O} + 1)`` with ``a_0 = 1`` (``O`` outstanding
bursts at most, ``R_j`` the cycle its last beat is taken); beat ``k`` is offered at
``v_k = max(a_{burst(k)} + L, t_{k−1} + 1, dram_beat_cycle(k))`` and taken at
``t_k = max(v_k, e_{g(k)})`` where ``g(k)`` is the first output group after which the unpacker's
two-beat window has room for it (it has dropped beat ``k − 2``); output group ``g`` (``≤ E``
elements of one row) leaves at ``e_g = max(e_{g−1} + 1, t_{need(g)} + 1)`` where ``need(g)`` is
the last beat holding its bits; ``done`` is high at ``e_last + 1``, the transfer's cycles.
When the unpacker keeps up (``E·bits ≥ data_bits``, a window row or more of beats in flight),
that is ``1 + L + beats + 1`` cycles for a single burst, and ``beats`` grows by one partial beat
at each end of every row: the model's ``⌈bytes / bytes_per_cycle⌉`` counts neither the latency
per burst window nor the partial beats (:func:`read_cycles`).

**Writer timing** (:func:`write_cycles`; the stream offers a word every cycle from cycle 1; the
DRAM takes a write beat whenever the bandwidth cap allows and answers a burst ``L`` cycles after
its last beat and its address): addresses go out as the reader's (``a_i``, with ``R_j`` now burst
``j``'s response); word ``w`` of a row (``P_w`` bits of the row before it, from the row's offset
in its first beat) is taken at ``x_w = max(x_{w−1} + 1, s_{⌈(P_w + k_w·bits) / data_bits⌉ − 3})``
(the packer holds two beats), the row's first word one cycle after the previous row's last beat;
beat ``b`` can go the cycle after the word that fills it (a row's last beats: after its last
word) and goes at ``s_b = max(that, s_{b−1} + 1, dram_beat_cycle(b), a_{burst(b)} + 1)`` (write
data follows its address); ``done`` is high at ``R_last + 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwmodel.arch.program import Operand

#: AXI4: a burst must not cross a 4 KiB address boundary.
BOUNDARY_BYTES = 4096
#: AXI4 INCR bursts hold at most 256 beats.
AXI_MAX_BURST = 256


@dataclass(frozen=True)
class DmaConfig:
    """A DMA build: bus width, output / input words (``elems_per_cycle`` codes of up to
    ``max_bits``), longest burst and bursts in flight."""

    data_bits: int = 128
    elems_per_cycle: int = 4
    max_bits: int = 16
    max_burst: int = 16
    max_outstanding: int = 4

    def __post_init__(self) -> None:
        d = self.data_bits
        if d < 8 or d & (d - 1) or d > 8 * BOUNDARY_BYTES:
            raise ValueError(f"data_bits {d}: a power of two of whole bytes")
        if self.elems_per_cycle < 1 or self.elems_per_cycle * self.max_bits > d:
            raise ValueError(
                f"elems_per_cycle {self.elems_per_cycle} · max_bits {self.max_bits} > data_bits {d}"
            )
        if not 1 <= self.max_burst <= AXI_MAX_BURST or self.max_outstanding < 1:
            raise ValueError(
                f"max_burst {self.max_burst} outside 1…{AXI_MAX_BURST} "
                f"or max_outstanding {self.max_outstanding} < 1"
            )

    @property
    def beat_bytes(self) -> int:
        return self.data_bits // 8


@dataclass(frozen=True)
class Window:
    """The part of an operand one transfer moves: head, first row and rows, first column and
    columns (elements)."""

    head: int
    row0: int
    rows: int
    col0: int
    cols: int


@dataclass(frozen=True)
class Burst:
    """One AXI4 INCR burst: byte address (beat-aligned), beats, and the window row it serves."""

    addr: int
    beats: int
    row: int


def row_start_bit(op: Operand, win: Window, row: int) -> int:
    """The first stream bit of window row ``row`` (0-based in the window)."""
    index = win.head * op.head_stride + (win.row0 + row) * op.row_stride + win.col0
    return 8 * op.addr + index * op.bits


def check_transfer(op: Operand, win: Window, cfg: DmaConfig, latency_cycles: int = 1) -> None:
    """``ValueError`` where the RTL cannot move ``win`` of ``op`` (widths, an empty window) or the
    DRAM would answer in the cycle of the request (``latency_cycles`` < 1)."""
    if latency_cycles < 1:
        raise ValueError(f"DRAM latency {latency_cycles}: at least one cycle")
    if not 1 <= op.bits <= cfg.max_bits:
        raise ValueError(f"element width {op.bits}: the DMA moves 1 to {cfg.max_bits} bits")
    if win.rows < 1 or win.cols < 1:
        raise ValueError(f"empty window {win}")


def check_write_alignment(op: Operand, win: Window) -> None:
    """``ValueError`` unless every window row starts on a byte boundary: the writer's strobes
    cover whole bytes and it never reads DRAM, so a byte shared with bits before the row cannot
    be written without overwriting them. (A row that ends inside a byte is written to the end of
    that byte, the rest of it 0: the compiler leaves padding there.)"""
    for r in range(win.rows):
        start = row_start_bit(op, win, r)
        if start % 8:
            raise ValueError(
                f"window row {r} of the {op.bits}-bit operand at {op.addr:#x} starts at stream bit "
                f"{start} (bit {start % 8} of byte {start // 8}): the writer covers whole bytes only, "
                "so window rows must start on byte boundaries (row_stride·bits, head_stride·bits and "
                "col0·bits multiples of 8)"
            )


def bursts(op: Operand, win: Window, cfg: DmaConfig) -> list[Burst]:
    """The bursts of a transfer, in issue order: each window row's beats, split at ``max_burst``
    beats and at 4 KiB boundaries."""
    data_bits, beat_bytes = cfg.data_bits, cfg.beat_bytes
    page = BOUNDARY_BYTES // beat_bytes
    out: list[Burst] = []
    for r in range(win.rows):
        start = row_start_bit(op, win, r)
        first, last = start // data_bits, (start + win.cols * op.bits - 1) // data_bits
        beat = first
        while beat <= last:
            n = min(last - beat + 1, cfg.max_burst, page - beat % page)
            out.append(Burst(beat * beat_bytes, n, r))
            beat += n
    return out


def dram_beat_cycle(k: int, beat_bytes: int, bytes_per_cycle: float | None) -> int:
    """The testbench DRAM's bandwidth cap: beat ``k`` of a transfer (0-based) is not offered
    before this cycle (from the ``start`` pulse); ``None``: no cap."""
    if bytes_per_cycle is None:
        return 0
    return math.ceil((k + 1) * beat_bytes / bytes_per_cycle)


@dataclass(frozen=True)
class _Group:
    need: int  # last beat (of the transfer) holding its bits
    dropped: int  # beats of the transfer the window has dropped after it


def _groups(op: Operand, win: Window, data_bits: int, elems_per_cycle: int) -> list[_Group]:
    out: list[_Group] = []
    base = 0
    for r in range(win.rows):
        off = row_start_bit(op, win, r) % data_bits
        nbeats = (off + win.cols * op.bits - 1) // data_bits + 1
        for g in range(0, win.cols, elems_per_cycle):
            end = min(g + elems_per_cycle, win.cols)
            need = base + (off + end * op.bits - 1) // data_bits
            dropped = base + nbeats if end == win.cols else base + (off + end * op.bits) // data_bits
            out.append(_Group(need, dropped))
        base += nbeats
    return out


def _beat_index(plan: list[Burst]) -> tuple[list[int], list[int]]:
    """Each beat's burst, and each burst's last beat (indices in the transfer)."""
    burst_of = [i for i, b in enumerate(plan) for _ in range(b.beats)]
    last_of = list(np.cumsum([b.beats for b in plan], dtype=np.int64) - 1)
    return burst_of, [int(x) for x in last_of]


def read_cycles(
    op: Operand, win: Window, cfg: DmaConfig, latency_cycles: int, bytes_per_cycle: float | None
) -> int:
    """Cycles from the reader's ``start`` to its ``done`` (module docstring's recurrence)."""
    check_transfer(op, win, cfg, latency_cycles)
    plan = bursts(op, win, cfg)
    groups = _groups(op, win, cfg.data_bits, cfg.elems_per_cycle)
    beat_bytes, max_outstanding = cfg.beat_bytes, cfg.max_outstanding
    burst_of, last_of = _beat_index(plan)
    taken: list[int] = []
    emitted: list[int] = []
    issued: list[int] = []
    frees = 0  # the first group after which the window has room for beat k

    def emit_until(g: int) -> None:  # emission cycles of groups up to g (their beats are taken)
        while len(emitted) <= g:
            grp = groups[len(emitted)]
            prev = emitted[-1] + 1 if emitted else 0
            emitted.append(max(prev, taken[grp.need] + 1))

    for k, i in enumerate(burst_of):
        while len(issued) <= i:
            j = len(issued)
            issued.append(
                max(
                    issued[-1] + 1 if issued else 1,
                    taken[last_of[j - max_outstanding]] + 1 if j >= max_outstanding else 0,
                )
            )
        offered = max(
            issued[i] + latency_cycles,
            taken[-1] + 1 if taken else 0,
            dram_beat_cycle(k, beat_bytes, bytes_per_cycle),
        )
        room = 0
        if k >= 2:
            while groups[frees].dropped < k - 1:
                frees += 1
            emit_until(frees)
            room = emitted[frees]
        taken.append(max(offered, room))
    emit_until(len(groups) - 1)
    return emitted[-1] + 1


def write_cycles(
    op: Operand, win: Window, cfg: DmaConfig, latency_cycles: int, bytes_per_cycle: float | None
) -> int:
    """Cycles from the writer's ``start`` to its ``done`` (module docstring's writer recurrence),
    the element stream offering a word every cycle from cycle 1."""
    check_transfer(op, win, cfg, latency_cycles)
    check_write_alignment(op, win)
    plan = bursts(op, win, cfg)
    data_bits, elems_per_cycle = cfg.data_bits, cfg.elems_per_cycle
    beat_bytes, max_outstanding = cfg.beat_bytes, cfg.max_outstanding
    burst_of, last_of = _beat_index(plan)
    issued: list[int] = []
    ready: list[int] = []  # each beat's cycle from which it can go (its bits are in)
    sent: list[int] = []

    def answer(j: int) -> int:  # the cycle of burst j's write response
        send_until(last_of[j])
        return max(sent[last_of[j]], issued[j]) + latency_cycles

    def send_until(b: int) -> None:
        while len(sent) <= b:
            k = len(sent)
            i = burst_of[k]
            while len(issued) <= i:
                j = len(issued)
                after = answer(j - max_outstanding) + 1 if j >= max_outstanding else 0
                issued.append(max(issued[-1] + 1 if issued else 1, after))
            beat = dram_beat_cycle(k, beat_bytes, bytes_per_cycle)
            sent.append(max(ready[k], sent[-1] + 1 if sent else 0, beat, issued[i] + 1))

    base, free = 0, 1  # the row's first beat; the cycle its first word can be taken from
    for r in range(win.rows):
        off = row_start_bit(op, win, r) % data_bits
        nbeats = -(-(off + win.cols * op.bits) // data_bits)
        filled, take = off, free - 1
        for g in range(0, win.cols, elems_per_cycle):
            k_bits = (min(g + elems_per_cycle, win.cols) - g) * op.bits
            take += 1
            gone = -(-(filled + k_bits) // data_bits) - 3  # this beat must have left by the take
            if gone >= 0:
                send_until(base + gone)
                take = max(take, sent[base + gone])
            filled += k_bits
            while len(ready) - base < filled // data_bits and g + elems_per_cycle < win.cols:
                ready.append(take + 1)
        ready += [take + 1] * (base + nbeats - len(ready))
        send_until(base + nbeats - 1)
        base, free = base + nbeats, sent[base + nbeats - 1] + 1
    return answer(len(plan) - 1) + 2
