"""PyRTL generator of the GEMM core: one ``gemm`` descriptor's tiles on the design's engine, its
operands read from DRAM by the tile DMA, its accumulators handed out as a stream (the *C stream*
the GEMM epilogue consumes).

:func:`gemm_core` builds, from wires, one tile DMA reader (:func:`hwmodel.rtl.dma.reader`, one
AXI4 read channel) and the tile frontend (:func:`hwmodel.rtl.tile.tile_frontend`: engine, banked
A/B/C tile buffers, fold sequencer) and a tile walker that runs the descriptor:
``C[h] = A[h]·B[h]`` for ``h < repeat`` (:mod:`hwmodel.arch.program`; bias, rescale and the
write-back are the epilogue's). :class:`GemmSpec` holds its build parameters and
:func:`gemm_spec` derives them from a design's engine and its program's GEMM descriptors;
:func:`build_gemm` names the ports, :func:`simulate_gemm` / :func:`simulate_gemms` run one or
several descriptors in ``FastSimulation`` against the testbench DRAM
(:class:`hwmodel.rtl.dram.Dram`). A top-level instantiates :func:`gemm_core` with
``gemm_spec(design_engine(workload, config, device), program.descriptors, data_bits)``.

**What it runs.** B as weight codes (``F_WEIGHT``, n-major, ``b_bits`` ≤ the engine's weight
bits), with a PoT-channel table (``pot_addr`` ≠ 0: one bit per output channel; a PoT channel's
``b_bits`` code ``sign << (b−1) | m`` is re-encoded to the engine's ``pot_weight_bits`` and goes
to the PoT sub-array, the others to the fixed-point one; the C stream is in the original channel
order) or as activations n-major (Q·Kᵀ's K) or k-major (``F_B_KMAJOR``: softmax·V's V); heads
(``repeat``, ``a_head_stride``, ``b_head_stride``); ``F_TRANSPOSED`` (the engine runs
Cᵀ = Bᵀ·Aᵀ: B's rows are the tokens, A's the channels; the C stream is still in the descriptor's
orientation); every packing mode of the engine (``f_mode`` from the operand widths, as
:meth:`hwmodel.arch.engine.EngineConfig.mode_for`: the densest mode admitting the weight-side
and the token-side widths, an unsigned operand counting one bit more).

**Tile loop** (in series, one tile at a time; no ping-pong yet): heads → m tiles → n tiles → k
tiles (the model's order, :mod:`hwmodel.arch.controller`). Per k tile: ``setup`` (1 cycle),
``ceil`` (⌈ek / rows⌉·rows by repeated addition: ⌈ek / rows⌉ + 1 cycles), on a weight GEMM's
first k tile with a PoT table its ``en`` bits (``pot_go`` + a transfer), the token operand
(``a_go`` + a transfer: A, or B when transposed) and the channel operand (``b_go`` + a
transfer), ``run_go`` and the tile (:data:`~hwmodel.rtl.tile.TILE_LATENCY` + its compute
cycles + 1); after the last k tile the C stream (a header cycle, then one accumulator a cycle
while ``ready``) and one cycle to step to the next tile (``done`` pulses in it after the last).
A transfer takes the reader's :func:`hwmodel.arch.dma.read_cycles` with ``elems_per_cycle`` = 1
plus one cycle (the core moves on in the cycle after the reader's ``done``). With one k tile
(k ≤ tk) A's tile stays in its buffer across the n tiles of an m tile (the token buffer, or
the channel buffer when transposed, is loaded once per m tile). **Cycles** (``op_start`` to
``done``; testbench DRAM latency 8, 64-bit bus, no bandwidth cap; ``tests/test_rtl_gemm.py``
holds the one-tile count exactly): one 8 × 4 × 16 W8A8 tile on r4 × f2: 323 cycles, the tile's
compute 66 of them. The tiny ViT's block-1 GEMMs (W8A8, engine r4 × f4, tiles 8 × 8 × 8) take
qkv 14,670, qk 4,844, sv 4,640, proj 4,890, fc1 19,560, fc2 18,282 cycles with one reader and
10,107, 3,560, 3,360, 3,369, 13,476, 12,198 with two, where the model's per-layer latency
(ZCU102, 200 MHz) is 3,204, 1,071, 1,071, 1,098, 4,257, 4,257: 4.3–4.6× (one reader), 2.9–3.3×
(two): the element-serial loads (one code a cycle: ``tm·tk + tn·tk`` per k tile, where the
model prices ``⌈bytes / bytes_per_cycle⌉`` and overlaps them with the compute) and the C
stream (``tm·tn`` a tile) in series with the compute. The ping-pong copy (the controller's ``pp`` bit)
would overlap a tile's loads with the previous tile's compute and stream: the walker's phases
are already the controller's (``xfer_start`` = ``a_go``, ``tile_start`` = ``run_go``,
``compute_done`` = the frontend's ``done``); the frontend has no second copy yet.

**Buffer writes.** The DMA's elements arrive one a cycle, row-major in the window; each goes to
its (bank, word, field) of the frontend's layout (:mod:`hwmodel.rtl.tile`), found by
incremental cursors (no dividers): a depth cursor (row of the engine, k-fold word bases), a
token cursor (field t mod τ, word t div τ) and a channel cursor (fixed: lane ch < κ, column c,
fold parity for the shared words of a two-mode engine, word bases; PoT: column, word bases; the
PoT bit of the channel). Words that pack several fields (A: τ tokens; fixed B: two channels on
an engine with a 4-lane mode) are written **one field at a time** with per-field write enables
(:class:`hwmodel.rtl.tile.DmaWrite`'s ``mask``: each such bank is one memory per field; on a
block RAM these are its byte-write enables, so no memory beyond the cost model's buffers). The
alternative — staging a whole DMA row (``tk`` codes) so two rows' codes meet in one word, or for
the 2-lane mode of a two-mode engine ``cols_fixed`` rows — would add a ``tk``-deep (or
``cols_fixed · tk``-deep) staging memory beside the priced ones.

**Ports.** In: ``op_start`` (pulse, while idle; the core does not look at ``opcode``: a
top-level gates the sequencer's ``op_start`` with ``opcode == gemm``), the descriptor's fields
``d`` (:class:`hwmodel.rtl.sequencer.Sequencer`'s ``fields``, by
:data:`hwmodel.arch.program.FIELDS` name, held from ``op_start`` on; m, n, k, tiles and heads
below 2^16), ``GemmSpec.readers`` read channels (:class:`hwmodel.rtl.dma.ReadChannel`; one: the
PoT bits, the token and the channel operand one after another; two: the token operand on the
first, the PoT bits and the channel operand on the second, the two operands' transfers side by
side, their loads taking the longer transfer's cycles + 1 instead of both + 2), ``ready`` (the
C stream's back-pressure). Out: :class:`CStream` (per output tile a header pulse ``tile`` with ``h``,
``m0``, ``rows``, ``n0``, ``cols`` (16 bits, held until the next ``tile``) in the descriptor's
orientation, then the tile's accumulators row-major: ``valid``, ``data`` (``elems`` × 32-bit
signed, bias not added; the engine's ``acc_bits`` sign-extended or cut to 32), ``count``
(1 … ``elems``, never mixing two rows), ``row_end``, ``last``; a word moves when ``valid &
ready``; ``done`` pulses in the cycle after the op's last word moved), the reader's AXI4 master
side (:class:`hwmodel.rtl.dma.Reader`), ``busy``.

**Back to back.** Ops share the buffers (what a program does, :func:`simulate_gemms`): A's
missing tokens and rows past a fold's depth are gated to 0 by the frontend, a missing channel's
results are never read, and where a 4-lane B word holds the tile's last fixed channel alone,
its partner field is written 0 (a stale wider weight there would overflow its 4-bit lane into
the real channel's results — found by running a W8 op, then a W4A4 op of an odd channel count).

**Area** (Yosys 0.70, ``synth_xilinx -family xcup``; engine r4 × f2 W8A8 packing 2, tiles up to
16 tokens × k 16 × 8 channels, 64-bit reader): the whole core 2,148 LUT, 1,137 FF, 18 DSP48E2,
20 LUT-RAM primitives; of that the tile (engine, buffers, fold sequencer;
:func:`hwmodel.rtl.tile.tile_verilog`) 437 LUT, 533 FF, 8 DSP, 20 LUT RAM — the per-field split
of its A banks costs no LUT RAM — and
the reader (``elems_per_cycle`` 1) 1,020 LUT, 367 FF, 10 DSP; the walker, cursors, PoT bits,
transfer muxes and C slot mux the remaining ~690 LUT, ~240 FF. **Not priced by the model
yet**: that walker; the reader's element-serial rate; with a PoT table at arbitrary channels
both sub-arrays' B and C buffers are sized for a whole tile's channels
(``TileLimits.channels_fixed`` = ``channels_pot`` = the largest tile's), where the model prices
``split_channels(tn, ratio)`` each; an unsigned activation (softmax·V's P) of ``b`` bits needs a
``b + 1``-bit signed engine input, which :func:`gemm_spec` builds (``act_bits`` widened: a
W8A8 design's engine gets 9-bit activations) where the model's engine
(:func:`hwmodel.model.evaluation.design_engine`) has ``b``; the model's transposed rows keep
the layer's (weight, activation) widths where the engine swaps the operands' sides
(:func:`gemm_spec` widens for what the descriptors need).

**Into the top-level**: ``gemm_core(gemm_spec(design_engine(...), program.descriptors,
data_bits, readers=2), seq.op_start & is_gemm, seq.fields, channels, epilogue_ready)``; the C
stream's ``tile`` … ``last`` are the epilogue's :class:`~hwmodel.rtl.epilogue.CStream` fields
of the same names (``elems`` 1), its ``ready`` the epilogue's ``ready``, ``done`` its
``core_done``.

**Verilog**: :func:`gemm_verilog` (DSP primitives as :func:`hwmodel.rtl.tile.tile_verilog`);
:func:`cosimulate_gemm` replays a recorded run under Icarus (the words match).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.bits import bits_for
from hwmodel.arch.dma import DmaConfig
from hwmodel.arch.engine import MAX_ACC_BITS, EngineConfig, required_acc_bits
from hwmodel.arch.program import (
    F_B_KMAJOR,
    F_TRANSPOSED,
    F_WEIGHT,
    OPCODES,
    Descriptor,
)
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import COUNT_BITS, ReadChannel, Reader, read_channel_inputs, reader
from hwmodel.rtl.dram import Dram
from hwmodel.rtl.dsp import PrimitiveSlices, SliceBuilder, embed_primitives
from hwmodel.rtl.engines import hold_register
from hwmodel.rtl.sequencer import descriptor_inputs, descriptor_values
from hwmodel.rtl.tile import DmaWrite, TileLimits, tile_buffer_shapes, tile_frontend
from hwmodel.rtl.verilog import cosimulate_verilog, working_block_verilog

Wire: TypeAlias = pyrtl.WireVector

#: Width of an accumulator in the C stream (the program's int32).
ACC_OUT_BITS = 32
#: Width of the C stream's header fields and of the core's tile counters.
HEADER_BITS = COUNT_BITS

_STATES = (
    "idle",
    "setup",
    "ceil",
    "pot_go",
    "pot",
    "a_go",
    "a",
    "b_go",
    "b",
    "run_go",
    "run",
    "head",
    "drain",
    "next",
)
_S = {name: i for i, name in enumerate(_STATES)}
_STATE_BITS = bits_for(len(_STATES))


@dataclass(frozen=True)
class GemmSpec:
    """The core's build parameters: the engine, the largest tile in the engine's orientation
    (tokens × depth × channels), the DMA reader's build and the C stream's elements a word."""

    engine: EngineConfig
    limits: TileLimits
    dma: DmaConfig
    elems: int = 1
    #: read channels: 1 (PoT bits, token and channel operand one after another) or 2 (the token
    #: operand on the first, the PoT bits and the channel operand on the second, beside it)
    readers: int = 1

    def __post_init__(self) -> None:
        if self.readers not in (1, 2):
            raise ValueError(f"readers {self.readers}: 1 or 2")
        if self.engine.cols_fixed == 0:
            raise ValueError("the GEMM core needs a fixed-point sub-array (activation × activation GEMMs)")
        if self.elems != 1:
            raise ValueError("the C stream puts out one accumulator a word (elems 1)")
        if self.dma.elems_per_cycle != 1:
            raise ValueError("the core writes one DMA element a cycle (elems_per_cycle 1)")
        need = max(self.engine.act_bits, self.engine.weight_bits, self.engine.pot_weight_bits)
        if self.dma.max_bits < need:
            raise ValueError(f"DMA max_bits {self.dma.max_bits} < the engine's {need}-bit operands")


def _eff_bits(bits: int, signed: int) -> int:
    """Signed bits that hold a code of ``bits`` (one more when unsigned)."""
    return bits + (0 if signed else 1)


def _sides(d: Descriptor) -> tuple[int, int]:
    """(weight-side, token-side) signed widths the engine needs for descriptor ``d``."""
    a, b = _eff_bits(d.a.bits, d.a.signed), _eff_bits(d.b.bits, d.b.signed)
    if d.has(F_WEIGHT):
        return d.b.bits, a
    return (a, b) if d.has(F_TRANSPOSED) else (b, a)


def gemm_spec(
    engine: EngineConfig,
    descriptors: Sequence[Descriptor],
    data_bits: int = 128,
    max_burst: int = 16,
    max_outstanding: int = 4,
    readers: int = 1,
) -> GemmSpec:
    """The core for a program's GEMMs on ``engine`` (a design's:
    :func:`hwmodel.model.evaluation.design_engine`): the largest tile of its GEMM descriptors in
    the engine's orientation (a PoT table sizes both sub-arrays for whole tiles), the engine's
    ``act_bits`` / ``weight_bits`` / ``pot_weight_bits`` widened where an operand needs more (an
    unsigned code counts a bit more) and ``acc_bits`` with them, a reader of ``data_bits`` for
    the widest operand."""
    gemms = [d for d in descriptors if d.opcode == OPCODES["gemm"]]
    if not gemms:
        raise ValueError("no GEMM descriptors")
    wb = max([engine.weight_bits, *(_sides(d)[0] for d in gemms)])  # a PoT layer's fixed channels too
    ab = max([engine.act_bits, *(_sides(d)[1] for d in gemms)])
    pots = [d.b.bits for d in gemms if d.pot_addr]
    if pots and not engine.cols_pot:
        raise ValueError("PoT channels in the program, no PoT columns in the engine")
    pwb = max([engine.pot_weight_bits, *pots])
    if (wb, ab, pwb) != (engine.weight_bits, engine.act_bits, engine.pot_weight_bits):
        acc = required_acc_bits(max(d.k for d in gemms), wb, pwb if engine.cols_pot else 0, ab)
        acc = max(engine.acc_bits, min(acc, MAX_ACC_BITS))
        engine = replace(engine, weight_bits=wb, act_bits=ab, pot_weight_bits=pwb, acc_bits=acc)
        if len({m.tokens for m in engine.modes}) > 1:
            # the widened operand no longer packs as the narrow mode does (DSP48E1, 9-bit
            # activations: one token a slice beside the 4-lane mode's two), and the tile buffers
            # hold one token count: no packing, one mode
            engine = replace(engine, packing=1)
    tokens = max(d.tn if d.has(F_TRANSPOSED) else d.tm for d in gemms)
    depth = max(d.tk for d in gemms)
    channels = max(d.tm if d.has(F_TRANSPOSED) else d.tn for d in gemms)
    limits = TileLimits(tokens, depth, channels, channels if engine.cols_pot else 0)
    max_bits = max(engine.act_bits, engine.weight_bits, engine.pot_weight_bits)
    return GemmSpec(engine, limits, DmaConfig(data_bits, 1, max_bits, max_burst, max_outstanding), 1, readers)


@dataclass(frozen=True)
class CStream:
    """The GEMM core's accumulators (module docstring): a header per output tile, then its words
    (what :func:`hwmodel.rtl.epilogue.epilogue` consumes)."""

    tile: Wire
    h: Wire
    m0: Wire
    rows: Wire
    n0: Wire
    cols: Wire
    valid: Wire
    data: Wire
    count: Wire
    row_end: Wire
    last: Wire


@dataclass(frozen=True)
class GemmCore:
    """The core's outputs: the C stream, ``done`` (the cycle after the op's last word moved), the
    readers (AXI4 master sides, one per read channel) and ``busy``."""

    c: CStream
    done: Wire
    readers: tuple[Reader, ...]
    busy: Wire


def _c(value: int, bits: int) -> Wire:
    return pyrtl.Const(value, bits)


def _fit(w: Wire, bits: int) -> Wire:
    return w[:bits] if len(w) > bits else w.zero_extended(bits)


def _min(a: Wire, b: Wire) -> Wire:
    return pyrtl.select(a < b, a, b)


def _drive(reg: pyrtl.Register, reset: Wire, step: Wire, value: Wire) -> Wire:
    """``reg`` ← 0 on ``reset``, ``value`` on ``step``, else held; returns its next value."""
    bits = len(reg)
    nxt = pyrtl.select(reset, _c(0, bits), pyrtl.select(step, _fit(value, bits), reg))
    reg.next <<= nxt
    return nxt


def _wrap(reg: pyrtl.Register, reset: Wire, step: Wire, last: Wire) -> tuple[Wire, Wire]:
    """A counter 0 … (wraps where ``last``); returns (next value, wraps this step)."""
    nxt = _drive(reg, reset, step, pyrtl.select(last, _c(0, len(reg)), reg + 1))
    return nxt, step & last


@dataclass(frozen=True)
class _Depth:
    """Depth cursor: engine row r = k mod rows, A word base kf·steps, B word offset kf·rows."""

    r: Wire
    kfa: Wire
    kfb: Wire


def _depth_cursor(reset: Wire, step: Wire, rows: int, steps: Wire, bits: int) -> tuple[_Depth, _Depth]:
    r, kfa, kfb = pyrtl.Register(bits_for(rows)), pyrtl.Register(bits), pyrtl.Register(bits)
    nr, wrap = _wrap(r, reset, step, r == rows - 1)
    nkfa = _drive(kfa, reset, wrap, kfa + steps)
    nkfb = _drive(kfb, reset, wrap, kfb + rows)
    return _Depth(r, kfa, kfb), _Depth(nr, nkfa, nkfb)


@dataclass(frozen=True)
class _Token:
    """Token cursor: field t mod τ, word t div τ, token t."""

    sub: Wire
    word: Wire
    t: Wire


def _token_cursor(reset: Wire, step: Wire, tau: int, bits: int) -> tuple[_Token, _Token]:
    sub, word, t = pyrtl.Register(bits_for(tau)), pyrtl.Register(bits), pyrtl.Register(bits)
    nsub, wrap = _wrap(sub, reset, step, sub == tau - 1)
    nword = _drive(word, reset, wrap, word + 1)
    nt = _drive(t, reset, step, t + 1)
    return _Token(sub, word, t), _Token(nsub, nword, nt)


@dataclass(frozen=True)
class _Channel:
    """Channel cursor: the channel's index j in the tile, whether it is PoT, and its place in
    the fixed sub-array (column ``c``, the field of its B word, B and C word bases) or the PoT
    one (column, B and C word bases)."""

    j: Wire
    pot: Wire
    f_j: Wire
    f_c: Wire
    f_field: Wire
    f_bb: Wire
    f_cb: Wire
    p_c: Wire
    p_bb: Wire
    p_cb: Wire


def _channel_cursor(
    reset: Wire,
    step: Wire,
    engine: EngineConfig,
    kappa: Wire,
    share_m1: Wire,
    kfr: Wire,
    steps: Wire,
    tokens: Wire,
    pot_of: Callable[[Wire], Wire],
    bits: int,
) -> tuple[_Channel, _Channel]:
    """(current, next) of the channel cursor; ``pot_of(j)``: whether tile channel j is PoT.
    Fixed channels walk lane ch < κ, column c, fold parity (< share: two folds of the 2-lane
    mode share each word of a two-mode engine), then the word bases; PoT ones column, bases."""
    j = pyrtl.Register(bits)
    is_pot = pot_of(j)
    nj = _drive(j, reset, step, j + 1)
    f_step, p_step = step & ~is_pot, step & is_pot
    f_j = pyrtl.Register(bits)
    n_fj = _drive(f_j, reset, f_step, f_j + 1)
    f_ch, f_c, f_par = pyrtl.Register(2), pyrtl.Register(bits_for(engine.cols_fixed)), pyrtl.Register(2)
    f_bb, f_cb = pyrtl.Register(bits), pyrtl.Register(bits)
    n_ch, ch_wrap = _wrap(f_ch, reset, f_step, f_ch == (kappa - 1)[:2])
    n_c, g_wrap = _wrap(f_c, reset, ch_wrap, f_c == engine.cols_fixed - 1)
    n_par, pair_wrap = _wrap(f_par, reset, g_wrap, f_par == share_m1)
    n_bb = _drive(f_bb, reset, pair_wrap, f_bb + kfr)
    n_cb = _drive(f_cb, reset, pair_wrap, f_cb + steps)

    def field(ch: Wire, par: Wire) -> Wire:
        return _fit(pyrtl.select(kappa == 1, par, ch), 2)

    if engine.cols_pot:
        p_c, p_bb, p_cb = (
            pyrtl.Register(bits_for(engine.cols_pot)),
            pyrtl.Register(bits),
            pyrtl.Register(bits),
        )
        n_pc, p_wrap = _wrap(p_c, reset, p_step, p_c == engine.cols_pot - 1)
        n_pbb = _drive(p_bb, reset, p_wrap, p_bb + kfr)
        n_pcb = _drive(p_cb, reset, p_wrap, p_cb + tokens)
        cur_p: tuple[Wire, Wire, Wire] = (p_c, p_bb, p_cb)
        nxt_p: tuple[Wire, Wire, Wire] = (n_pc, n_pbb, n_pcb)
    else:
        cur_p = nxt_p = (_c(0, 1), _c(0, 1), _c(0, 1))
    cur = _Channel(j, is_pot, f_j, f_c, field(f_ch, f_par), f_bb, f_cb, *cur_p)
    nxt = _Channel(nj, pot_of(nj), n_fj, n_c, field(n_ch, n_par), n_bb, n_cb, *nxt_p)
    return cur, nxt


def _one_hot(index: Wire, n: int) -> Wire:
    return pyrtl.concat_list([index == i for i in range(n)])


def _transfer(
    d: Mapping[str, Wire], op: str, head: Wire, row0: Wire, rows: Wire, col0: Wire, cols: Wire
) -> dict[str, Wire]:
    """The reader's transfer inputs for a window of operand ``op`` (``a`` or ``b``)."""
    return {
        "op_addr": d[f"{op}_addr"],
        "op_row_stride": d[f"{op}_row_stride"],
        "op_head_stride": d[f"{op}_head_stride"],
        "op_bits": d[f"{op}_bits"],
        "op_signed": d[f"{op}_signed"],
        "win_head": head,
        "win_row0": row0,
        "win_rows": rows,
        "win_col0": col0,
        "win_cols": cols,
    }


def _mux_ports(sel: Wire, a: Mapping[str, Wire], b: Mapping[str, Wire]) -> dict[str, Wire]:
    """``a`` where ``sel`` else ``b``, port by port."""
    out = {}
    for name in a:
        width = max(len(a[name]), len(b[name]))
        out[name] = pyrtl.select(sel, _fit(a[name], width), _fit(b[name], width))
    return out


def _mode_index(engine: EngineConfig, wbits: Wire, abits: Wire) -> Wire | None:
    """The packing mode of the layer's widths (:meth:`EngineConfig.mode_for`, 0 if none admits);
    None for a one-mode engine."""
    if len(engine.modes) == 1:
        return None
    bits = bits_for(len(engine.modes))
    idx: Wire = _c(0, bits)
    for i, mode in enumerate(engine.modes):
        admits = (wbits <= mode.weight_bits) & (abits <= mode.act_bits)
        idx = pyrtl.select(admits, _c(i, bits), idx)
    return idx


def _pick(default: Wire, cases: Sequence[tuple[Wire, int]]) -> Wire:
    """The state of the first case whose condition holds, else ``default``."""
    out = default
    for cond, value in reversed(cases):
        out = pyrtl.select(cond, _c(value, len(default)), out)
    return out


def gemm_core(
    spec: GemmSpec,
    op_start: Wire,
    d: Mapping[str, Wire],
    axi: Sequence[ReadChannel],
    ready: Wire,
    slices: SliceBuilder | None = None,
) -> GemmCore:
    """The GEMM core (module docstring) on wires: ``op_start``, the descriptor's fields ``d`` (by
    name; held from ``op_start`` on), the read channels ``axi`` (``spec.readers`` of them) and
    the C stream's ``ready``;
    ``slices`` builds the engine's DSP slices (default: their PyRTL model; a Verilog export
    passes :class:`hwmodel.rtl.dsp.PrimitiveSlices`). Latency: module docstring (tile loop)."""
    eng, lim = spec.engine, spec.limits
    rows, tau, fields = eng.rows, eng.tokens, eng.channels
    hb = HEADER_BITS
    state = pyrtl.Register(_STATE_BITS)

    def at(name: str) -> Wire:
        return state == _S[name]

    flags = d["flags"]
    weight = flags[F_WEIGHT.bit_length() - 1]
    kmajor = flags[F_B_KMAJOR.bit_length() - 1]
    transposed = flags[F_TRANSPOSED.bit_length() - 1]
    m, n, k = (_fit(d[x], hb) for x in ("m", "n", "k"))
    repeat = _fit(d["repeat"], hb)
    tm, tn, tk = (_fit(d[x], hb) for x in ("tm", "tn", "tk"))
    pot_on = (weight & (d["pot_addr"] != 0)) if eng.cols_pot else _c(0, 1)

    # the tile walker: heads → m → n → k (edge tiles by min)
    h, m0, n0, k0 = (pyrtl.Register(hb) for _ in range(4))
    em = _min(tm, (m - m0)[:hb])
    en = _min(tn, (n - n0)[:hb])
    ek = _min(tk, (k - k0)[:hb])
    tokens = pyrtl.select(transposed, en, em)
    channels = pyrtl.select(transposed, em, en)
    steps = tokens if tau == 1 else _fit((tokens + 1)[1:], hb)
    k_more = (k0 + tk)[: hb + 1] < k
    n_more = (n0 + tn)[: hb + 1] < n
    m_more = (m0 + tm)[: hb + 1] < m
    h_more = (h + 1)[: hb + 1] < repeat
    first_k = k0 == 0

    # ⌈ek / rows⌉·rows (B words per channel fold) by repeated addition
    kfr = pyrtl.Register(hb)
    kfr_short = kfr < ek
    kfr.next <<= pyrtl.select(
        at("setup"), _c(0, hb), pyrtl.select(at("ceil") & kfr_short, (kfr + rows)[:hb], kfr)
    )

    # with one k tile, A's tile (the m rows) stays in its buffer across the n tiles of an m tile:
    # the token buffer (the channel buffer when transposed) is not reloaded
    keep = (k <= tk) & (n0 != 0)
    keep_a, keep_b = keep & ~transposed, keep & transposed

    # the readers: PoT bits, the token operand, the channel operand
    zero = _c(0, hb)
    pot_ports: dict[str, Wire] = {
        "op_addr": d["pot_addr"],
        "op_row_stride": n,
        "op_head_stride": _c(0, 1),
        "op_bits": _c(1, 7),
        "op_signed": _c(0, 1),
        "win_head": zero,
        "win_row0": zero,
        "win_rows": _c(1, hb),
        "win_col0": n0,
        "win_cols": en,
    }
    tok_kmajor = transposed & kmajor
    wgt_kmajor = ~transposed & kmajor
    b_kmajor = _transfer(d, "b", h, k0, ek, n0, en)
    b_nmajor = _transfer(d, "b", h, n0, en, k0, ek)
    a_rows = _transfer(d, "a", h, m0, em, k0, ek)
    b_ports = _mux_ports(kmajor, b_kmajor, b_nmajor)
    tok_ports = _mux_ports(transposed, b_ports, a_rows)
    wgt_ports = _mux_ports(transposed, a_rows, b_ports)
    if len(axi) != spec.readers:
        raise ValueError(f"{len(axi)} read channels for a core of {spec.readers}")
    if spec.readers == 1:
        a_go, b_go = at("a_go"), at("b_go")
        ports = _mux_ports(at("pot_go"), pot_ports, _mux_ports(at("a_go"), tok_ports, wgt_ports))
        rds: tuple[Reader, ...] = (reader(spec.dma, at("pot_go") | a_go | b_go, ports, axi[0]),)
        rd_a = rd_b = rds[0]
        in_a, in_b = at("a"), at("b")
    else:  # both transfers start in a_go (the one kept: not), b_go is not used
        a_go, b_go = at("a_go") & ~keep_a, at("a_go") & ~keep_b
        rd_a = reader(spec.dma, a_go, tok_ports, axi[0])
        rd_b = reader(spec.dma, at("pot_go") | b_go, _mux_ports(at("pot_go"), pot_ports, wgt_ports), axi[1])
        rds = (rd_a, rd_b)
        flag_a, flag_b = pyrtl.Register(1), pyrtl.Register(1)
        flag_a.next <<= pyrtl.select(a_go, _c(1, 1), flag_a & ~rd_a.done)
        flag_b.next <<= pyrtl.select(b_go, _c(1, 1), flag_b & ~rd_b.done)
        in_a, in_b = flag_a, flag_b
    sa, sb = rd_a.stream, rd_b.stream
    code_a, code = sa.data[: spec.dma.max_bits], sb.data[: spec.dma.max_bits]

    # the tile's channel split: the PoT bits of its channels, in order
    nb = bits_for(max(lim.channels_fixed, lim.channels_pot) + 1)
    pot_mem = pyrtl.MemBlock(bitwidth=1, addrwidth=nb, max_read_ports=2, asynchronous=True)
    pj = pyrtl.Register(nb)
    pot_in = at("pot") & sb.valid
    pot_mem[pj] <<= pyrtl.MemBlock.EnabledWrite(code[0], pot_in)
    pj.next <<= pyrtl.select(at("pot_go"), _c(0, nb), pyrtl.select(pot_in, pj + 1, pj))
    n_pot = pyrtl.Register(nb)
    n_pot.next <<= pyrtl.select(
        at("setup") & first_k, _c(0, nb), pyrtl.select(pot_in & code[0], n_pot + 1, n_pot)
    )
    n_fix = (_fit(channels, nb + 1) - n_pot)[:nb]

    def pot_of(j: Wire) -> Wire:
        return pot_on & pot_mem[_fit(j, nb)]

    # the packing mode, its channels per column (κ) and fold pairs sharing a word (share − 1)
    a_eff = _fit(d["a_bits"], 8) + ~d["a_signed"][0]
    b_eff = _fit(d["b_bits"], 8) + ~d["b_signed"][0]
    wbits = pyrtl.select(weight, _fit(d["b_bits"], 9), pyrtl.select(transposed, a_eff, b_eff))
    abits = pyrtl.select(weight | ~transposed, a_eff, b_eff)
    mode = _mode_index(eng, wbits, abits)
    kappa: Wire = _c(eng.modes[0].channels, 2)
    share_m1: Wire = _c(fields // eng.modes[0].channels - 1, 2)
    if mode is not None:
        for i, lane in enumerate(eng.modes):
            kappa = pyrtl.select(mode == i, _c(lane.channels, 2), kappa)
            share_m1 = pyrtl.select(mode == i, _c(fields // lane.channels - 1, 2), share_m1)

    # the C stream's position (descriptor orientation: rows m, cols n)
    dcol, drow = pyrtl.Register(hb), pyrtl.Register(hb)
    head = at("head")
    out_rows, out_cols = hold_register(em, head), hold_register(en, head)
    fire = at("drain") & ready
    c_row_end = dcol == (out_cols - 1)[:hb]
    c_last = c_row_end & (drow == (out_rows - 1)[:hb])
    dcol.next <<= pyrtl.select(head | (fire & c_row_end), zero, pyrtl.select(fire, (dcol + 1)[:hb], dcol))
    drow.next <<= pyrtl.select(head, zero, pyrtl.select(fire & c_row_end, (drow + 1)[:hb], drow))
    c_inner, c_over = fire & ~c_row_end, fire & c_row_end

    # cursors: loads (a: token × depth, b: channel × depth, either order) and the C stream
    shapes = tile_buffer_shapes(eng, lim)
    ab = bits_for(max(words for _, words, _ in shapes.values()) + 1) + 1
    va, vb = sa.valid & in_a, sb.valid & in_b
    a_inner, a_over = va & ~sa.row_end, va & sa.row_end
    b_inner, b_over = vb & ~sb.row_end, vb & sb.row_end
    # depth cursors (A's and B's loads may run together): inner where the layout is n-major
    dep_a, _ = _depth_cursor(
        a_go | (a_over & ~tok_kmajor), pyrtl.select(tok_kmajor, a_over, a_inner), rows, steps, ab
    )
    dep_b, _ = _depth_cursor(
        b_go | (b_over & ~wgt_kmajor), pyrtl.select(wgt_kmajor, b_over, b_inner), rows, steps, ab
    )
    t_step = pyrtl.select(tok_kmajor, a_inner, a_over) | pyrtl.select(transposed, c_inner, c_over)
    t_reset = a_go | head | (a_over & tok_kmajor) | (transposed & c_over)
    tok, tok_n = _token_cursor(t_reset, t_step, tau, ab)
    ch_step = pyrtl.select(wgt_kmajor, b_inner, b_over) | pyrtl.select(transposed, c_over, c_inner)
    ch_reset = b_go | head | (b_over & wgt_kmajor) | (~transposed & c_over)
    chan, chan_n = _channel_cursor(ch_reset, ch_step, eng, kappa, share_m1, kfr, steps, tokens, pot_of, ab)

    # the buffer writes: one element a cycle into its field
    a_words, fb_words, fc_words = shapes["a"][1], shapes["fb"][1], shapes["fc"][1]
    a_dma = DmaWrite(
        va,
        dep_a.r,
        _fit(dep_a.kfa + tok.word, bits_for(a_words)),
        pyrtl.concat_list([code_a[: eng.act_bits]] * tau),
        _one_hot(tok.sub, tau) if tau > 1 else None,
    )
    # the tile's last fixed channel at lane 0 of a 4-lane word writes its partner's field 0: a
    # stale wider weight there would overflow its lane into this channel's results
    w_code = code[: eng.weight_bits]
    f_mask: Wire | None = None
    f_data = w_code
    if fields > 1:
        alone = (chan.f_j == (n_fix - 1)[:nb]) & (kappa == fields) & (chan.f_field == 0)
        f_mask = _one_hot(chan.f_field, fields) | pyrtl.select(alone, _c((1 << fields) - 1, fields), 0)
        rest = pyrtl.select(alone, _c(0, eng.weight_bits), w_code)
        f_data = pyrtl.concat_list([w_code] + [rest] * (fields - 1))
    b_dma = {
        "f": DmaWrite(
            vb & ~chan.pot,
            chan.f_c,
            _fit(chan.f_bb + dep_b.kfb + dep_b.r, bits_for(fb_words)),
            f_data,
            f_mask,
        )
    }
    chans = {"f": _fit(n_fix, bits_for(lim.channels_fixed + 1))}
    # the C reads: the address of the element the stream shows next cycle
    c_read = {"f": (chan_n.f_c, _fit(chan_n.f_cb + tok_n.word, bits_for(fc_words)))}
    if "pb" in shapes:
        pwb = eng.pot_weight_bits
        b_bits = _fit(d["b_bits"], 7)
        sign = pyrtl.shift_right_logical(code, (b_bits - 1)[:7])[0]
        mag = pyrtl.shift_left_logical(_c(1, spec.dma.max_bits + 1), (b_bits - 1)[:7]) - 1
        pot_code = pyrtl.concat(sign, (code & mag[: len(code)])[: pwb - 1])
        b_dma["p"] = DmaWrite(
            vb & chan.pot,
            chan.p_c,
            _fit(chan.p_bb + dep_b.kfb + dep_b.r, bits_for(shapes["pb"][1])),
            pot_code,
        )
        chans["p"] = _fit(n_pot, bits_for(lim.channels_pot + 1))
        c_read["p"] = (chan_n.p_c, _fit(chan_n.p_cb + tok_n.t, bits_for(shapes["pc"][1])))

    tile = tile_frontend(
        eng,
        lim,
        at("run_go"),
        _fit(tokens, bits_for(lim.tokens + 1)),
        _fit(ek, bits_for(lim.depth + 1)),
        chans,
        first_k,
        mode,
        a_dma,
        b_dma,
        c_read,
        slices,
    )

    # the accumulator of the element shown: its slot of the fixed word, or the PoT word
    acc = eng.acc_bits
    slot = _fit(tok.sub * fields + chan.f_field, bits_for(eng.slots))
    word = tile.c_data["f"]
    value: Wire = word[:acc]
    for i in range(1, eng.slots):
        value = pyrtl.select(slot == i, word[i * acc : (i + 1) * acc], value)
    if "p" in tile.c_data:
        value = pyrtl.select(chan.pot, tile.c_data["p"][:acc], value)
    data = value[:ACC_OUT_BITS] if acc >= ACC_OUT_BITS else value.sign_extended(ACC_OUT_BITS)

    # the walker's states
    over = ~(n_more | m_more | h_more)
    dma_done = rd_b.done  # the PoT bits' transfer, or the one reader's
    if spec.readers == 1:
        loads = [
            (at("ceil") & ~kfr_short & keep_a, _S["b_go"]),
            (at("ceil") & ~kfr_short, _S["a_go"]),
            (at("pot_go"), _S["pot"]),
            (at("pot") & dma_done & keep_a, _S["b_go"]),
            (at("pot") & dma_done, _S["a_go"]),
            (at("a_go"), _S["a"]),
            (at("a") & dma_done & keep_b, _S["run_go"]),
            (at("a") & dma_done, _S["b_go"]),
            (at("b_go"), _S["b"]),
            (at("b") & dma_done, _S["run_go"]),
        ]
    else:  # a_go starts both transfers, state a waits for both
        loads = [
            (at("ceil") & ~kfr_short, _S["a_go"]),
            (at("pot_go"), _S["pot"]),
            (at("pot") & dma_done, _S["a_go"]),
            (at("a_go"), _S["a"]),
            (at("a") & ~(in_a & ~rd_a.done) & ~(in_b & ~rd_b.done), _S["run_go"]),
        ]
    state.next <<= _pick(
        state,
        [
            (at("idle") & op_start, _S["setup"]),
            (at("setup"), _S["ceil"]),
            (at("ceil") & ~kfr_short & first_k & pot_on, _S["pot_go"]),
            *loads,
            (at("run_go"), _S["run"]),
            (at("run") & tile.done & k_more, _S["setup"]),
            (at("run") & tile.done, _S["head"]),
            (head, _S["drain"]),
            (fire & c_last, _S["next"]),
            (at("next") & over, _S["idle"]),
            (at("next"), _S["setup"]),
        ],
    )
    step_k = at("run") & tile.done & k_more
    step_tile = at("next")
    k0.next <<= pyrtl.select(at("idle") | step_tile, zero, pyrtl.select(step_k, (k0 + tk)[:hb], k0))
    n0.next <<= pyrtl.select(
        at("idle") | (step_tile & ~n_more), zero, pyrtl.select(step_tile, (n0 + tn)[:hb], n0)
    )
    m_step = step_tile & ~n_more
    m0.next <<= pyrtl.select(at("idle") | (m_step & ~m_more), zero, pyrtl.select(m_step, (m0 + tm)[:hb], m0))
    h_step = m_step & ~m_more
    h.next <<= pyrtl.select(at("idle"), zero, pyrtl.select(h_step, (h + 1)[:hb], h))
    done = at("next") & over

    def header(x: Wire, held: Wire) -> Wire:  # valid with the pulse, held until the next one
        return pyrtl.select(head, x, held)

    stream = CStream(
        tile=head,
        h=header(h, hold_register(h, head)),
        m0=header(m0, hold_register(m0, head)),
        rows=header(em, out_rows),
        n0=header(n0, hold_register(n0, head)),
        cols=header(en, out_cols),
        valid=at("drain"),
        data=data,
        count=_c(1, 1),
        row_end=at("drain") & c_row_end,
        last=at("drain") & c_last,
    )
    return GemmCore(stream, done, rds, ~at("idle"))


#: The port prefixes of the read channels (:func:`build_gemm`).
READ_PREFIXES = ("m_", "m1_")
#: The C stream's output ports (``c_<name>``).
C_PORTS = ("tile", "h", "m0", "rows", "n0", "cols", "valid", "data", "count", "row_end", "last", "done")


def build_gemm(spec: GemmSpec, slices: SliceBuilder | None = None) -> GemmCore:
    """The core with named ports into the working block (the caller resets it): inputs
    ``op_start``, ``d_<field>`` (every :data:`~hwmodel.arch.program.FIELDS` name), per read
    channel ``m_arready`` … (``m1_`` for the second; :func:`hwmodel.rtl.dma.read_channel_inputs`),
    ``c_ready``; outputs the readers' ``m_ar*`` / ``m_rready`` (``m1_`` …), ``c_<name>``
    (:data:`C_PORTS`) and ``busy``."""
    d = descriptor_inputs()
    core = gemm_core(
        spec,
        pyrtl.Input(1, "op_start"),
        d,
        [read_channel_inputs(spec.dma.data_bits, p) for p in READ_PREFIXES[: spec.readers]],
        pyrtl.Input(1, "c_ready"),
        slices,
    )
    for rd, prefix in zip(core.readers, READ_PREFIXES, strict=False):
        for name, wire in rd.ports(spec.dma.data_bits, prefix).items():
            output_port(name, wire)
    for name in C_PORTS:
        output_port(f"c_{name}", core.done if name == "done" else getattr(core.c, name))
    output_port("busy", core.busy)
    return core


I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CTile:
    """One output tile of the C stream: its header and accumulators (rows × cols, int64)."""

    h: int
    m0: int
    n0: int
    values: I64


@dataclass(frozen=True)
class GemmRun:
    """A simulated descriptor: the C stream's tiles in order, the cycles from ``op_start`` to
    ``done``, per tile the cycle of its header; with ``record`` every cycle's inputs and the
    (cycle, ``c_data``) of every word taken (what :func:`cosimulate_gemm` replays)."""

    tiles: tuple[CTile, ...]
    cycles: int
    header_cycles: tuple[int, ...]
    input_vectors: tuple[dict[str, int], ...] = ()
    words: tuple[tuple[int, int], ...] = ()


def simulate_gemm(
    spec: GemmSpec,
    image: npt.NDArray[np.uint8],
    desc: Descriptor,
    latency_cycles: int = 8,
    bytes_per_cycle: float | None = None,
    ready: Callable[[int], bool] | None = None,
    max_cycles: int = 2_000_000,
    record: bool = False,
) -> GemmRun:
    """Run ``desc`` through a freshly built core (:func:`simulate_gemms` of one descriptor)."""
    return simulate_gemms(spec, image, [desc], latency_cycles, bytes_per_cycle, ready, max_cycles, record)[0]


def simulate_gemms(
    spec: GemmSpec,
    image: npt.NDArray[np.uint8],
    descs: Sequence[Descriptor],
    latency_cycles: int = 8,
    bytes_per_cycle: float | None = None,
    ready: Callable[[int], bool] | None = None,
    max_cycles: int = 2_000_000,
    record: bool = False,
) -> list[GemmRun]:
    """Run ``descs`` one after another through one freshly built core (resets the working
    block; the buffers keep what earlier ops left) against the testbench DRAM on ``image``
    (:class:`hwmodel.rtl.dram.Dram`, port ``m_``): the first ``op_start`` in cycle 0, each next
    one in the cycle after the previous ``done``, the fields held from their ``op_start`` on,
    ``c_ready`` per cycle from ``ready`` (default: always); collects each op's C stream, checking
    its framing (headers, ``count``, ``row_end``, ``last``). A run's cycles count from its
    ``op_start`` to its ``done``, its cycles (headers, words) from the simulation's cycle 0."""
    fresh_block()
    build_gemm(spec)
    sim = pyrtl.FastSimulation()
    dram = Dram(
        image,
        spec.dma.data_bits,
        latency_cycles,
        bytes_per_cycle,
        prefixes=READ_PREFIXES[: spec.readers],
        writes=False,
    )
    runs: list[GemmRun] = []
    cycle = 0
    for desc in descs:
        fields = descriptor_values(desc)
        tiles: list[CTile] = []
        headers: list[int] = []
        header: tuple[int, int, int, int, int] | None = None
        got: list[int] = []
        vectors: list[dict[str, int]] = []
        words: list[tuple[int, int]] = []
        first = cycle
        while True:
            if cycle - first > max_cycles:
                raise RuntimeError(f"the GEMM core did not finish {desc.name} within {max_cycles} cycles")
            r = int(ready(cycle)) if ready is not None else 1
            inputs = {"op_start": int(cycle == first), **fields, **dram.inputs(cycle), "c_ready": r}
            sim.step(inputs)
            if record:
                vectors.append(inputs)
            dram.observe(cycle, sim.inspect)
            if sim.inspect("c_tile"):
                if got:
                    raise AssertionError(f"cycle {cycle}: a header before the last tile's last word")
                header = tuple(sim.inspect(f"c_{x}") for x in ("h", "m0", "rows", "n0", "cols"))  # type: ignore[assignment]
                headers.append(cycle)
            if sim.inspect("c_valid") and r:
                if header is None:
                    raise AssertionError(f"cycle {cycle}: a word before any header")
                hh, m0, rows, n0, cols = header
                value = sim.inspect("c_data")
                words.append((cycle, value))
                got.append(value - (1 << ACC_OUT_BITS) if value >> (ACC_OUT_BITS - 1) else value)
                if sim.inspect("c_count") != 1:
                    raise AssertionError(f"cycle {cycle}: count {sim.inspect('c_count')}")
                if bool(sim.inspect("c_row_end")) != (len(got) % cols == 0):
                    raise AssertionError(f"cycle {cycle}: row_end wrong at word {len(got)}")
                if bool(sim.inspect("c_last")) != (len(got) == rows * cols):
                    raise AssertionError(f"cycle {cycle}: last wrong at word {len(got)}")
                if len(got) == rows * cols:
                    tiles.append(CTile(hh, m0, n0, np.array(got, dtype=np.int64).reshape(rows, cols)))
                    got, header = [], None
            cycle += 1
            if sim.inspect("c_done"):
                break
        runs.append(
            GemmRun(
                tuple(tiles),
                cycle - 1 - first,
                tuple(headers),
                tuple(vectors) if record else (),
                tuple(words) if record else (),
            )
        )
    return runs


def gemm_verilog(spec: GemmSpec, module_name: str = "toplevel") -> str:
    """Verilog of the core with :func:`build_gemm`'s ports: one module, the PyRTL fabric and
    memories with one ``DSP48E1``/``DSP48E2`` primitive per fixed-point PE (as
    :func:`hwmodel.rtl.tile.tile_verilog`; resets the PyRTL working block)."""
    fresh_block()
    slices = PrimitiveSlices(spec.engine.slice)
    build_gemm(spec, slices)
    fabric = working_block_verilog(module_name, initialize_registers=True)
    lim = spec.limits
    header = (
        f"// codesign GEMM core of engine {spec.engine.name}: tiles up to {lim.tokens} tokens x k "
        f"{lim.depth} x {lim.channels_fixed} fixed + {lim.channels_pot} PoT channels, "
        f"{spec.dma.data_bits}-bit read channel\n"
    )
    return header + embed_primitives(fabric, slices.instances)


def cosimulate_gemm(spec: GemmSpec, run: GemmRun) -> tuple[tuple[int, int], ...]:
    """Replay a recorded :func:`simulate_gemm` run (``record=True``) on the core's exported
    Verilog under Icarus; returns (cycle, ``c_data``) of every word the Verilog put out with
    ``c_valid`` where the consumer was ready (equal to ``run.words`` when both agree; ``c_data``
    is sampled in the cycles PyRTL put out a word, -1 where the Verilog puts one out elsewhere)."""
    if not run.input_vectors:
        raise ValueError("simulate_gemm(..., record=True) records what to replay")
    at = {cycle for cycle, _ in run.words}
    sampled = [["c_valid", "c_data"] if i in at else ["c_valid"] for i in range(len(run.input_vectors))]
    got = cosimulate_verilog(
        gemm_verilog(spec), run.input_vectors, ["c_valid", "c_data"], timeout_s=300, sampled=sampled
    )
    return tuple(
        (cycle, out.get("c_data", -1))
        for cycle, (out, vec) in enumerate(zip(got, run.input_vectors, strict=True))
        if out["c_valid"] and vec["c_ready"]
    )
