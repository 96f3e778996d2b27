"""The per-layer timing of the analytic model as one compiled loop (numba): every oriented row's
latency, off-chip bytes, non-linear exposure and the figures the chains need.

:func:`row_timing` is what :func:`hwmodel.model.evaluation._oriented_timing` computes, row by row
and tile class by tile class, in machine code: the search's trial loop calls it once per design,
and as numpy array expressions it cost ~100 array operations of a few microseconds each.

A row's tiles fall in classes — m ∈ {full, short}, n ∈ {full, short}, k ∈ {full not last, full
last, short last} — that share their cycles (:mod:`hwmodel.arch.cycles`, vectorised over a class
instead of a tile) and their bytes. Per class: the fixed-point and PoT sub-arrays' compute cycles
(the channels split by the PoT ratio, round half to even), the transfer (A tile shared by the n
tiles when one k tile covers K, B tile by the m tiles when one tile covers N and K, the C tile
after the last k tile), the slot ``max(compute, transfer)``. The layer: the first load (first A
and B tiles, then the DRAM latency) plus every slot, all heads one stream.

The non-linear successor (:mod:`hwmodel.arch.controller`: ``NL_MODES`` 1 tile, 2 row, 3 head):
with S_j the slot cycles of group j and g_j its job, the layer gains ``Σ_{j≥1} max(0, g_{j−1} −
S_j) + g_last``, the pairs of consecutive groups counted per class — within an m row, from one m
row to the next, from one head to the next (:func:`hwmodel.arch.controller.overlapped_cycles`,
summed in closed form). Also per row: its last job and, for the row as the consumer of a job the
previous layer left pending, the start of its last group (its last m tile, or its last head where
``wait_head``) and the transfer that loads it.

Floating point as numpy's array expressions did it, operation for operation (the figures are
identical to the last bit): a tile class's bytes ``(em·ek)·per_a + (ek·en)·per_b + (em·en)·per_c``
with per_a, per_b and per_c as divisions, a row's bytes summed over its 12 classes in (m, n, k)
order pairwise as numpy sums a contiguous run of 12 (8 partial sums, then the rest).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hwmodel.arch.cycles import ceil_div, fixed_tile_cycles, pot_tile_cycles, split_channels
from hwmodel.base.jit import jit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Rows of :func:`row_timing`'s output: per oriented row its latency (with its successor's exposed
#: cycles), its off-chip bytes, the exposed cycles, the successor unit's busy cycles, its last job,
#: the start of its last group (as a consumer), that group's wait transfer; then its compute
#: cycles, transfer cycles (with the first load) and tiles.
OUT_ROWS = 10
#: The error codes :func:`row_timing` reports (0: none).
NO_POT_COLUMNS = 1
NO_FIXED_COLUMNS = 2


@jit
def _tile_cycles(
    em: int,
    en: int,
    ek: int,
    ratio: float,
    tokens: int,
    channels: int,
    rows: int,
    cols_fixed: int,
    chain: int,
    cols_pot: int,
) -> tuple[int, int, int]:
    """(compute cycles, fixed-point channels, PoT channels) of a tile class: the longer of the
    two sub-arrays (:mod:`hwmodel.arch.cycles`; a sub-array without columns takes 0)."""
    en_fix, en_pot = split_channels(en, ratio)
    fix = fixed_tile_cycles(em, en_fix, ek, rows, cols_fixed, chain, tokens, channels) if cols_fixed else 0
    pot = pot_tile_cycles(em, en_pot, ek, rows, cols_pot) if cols_pot else 0
    return max(fix, pot), en_fix, en_pot


@jit
def mode_lanes(lane_table: I64, weight_bits: int, act_bits: int) -> tuple[int, int]:
    """Tokens and channels per DSP slice of the packing mode a layer of ``weight_bits`` ×
    ``act_bits`` runs in: ``lane_table[:, weight_bits, act_bits]`` (an engine's
    :meth:`hwmodel.arch.engine.EngineConfig.mode_for`, tabulated up to its widths), one token and
    one channel beyond the table (wider than every mode: that layer's part of the engine is PoT)."""
    if 0 <= weight_bits < lane_table.shape[1] and 0 <= act_bits < lane_table.shape[2]:
        return lane_table[0, weight_bits, act_bits], lane_table[1, weight_bits, act_bits]
    return 1, 1


@jit
def _pairwise12(a: F64) -> float:
    """Sum of 12 floats as numpy's pairwise sum adds a contiguous run of them."""
    res = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    for i in range(8, 12):
        res += a[i]
    return float(res)


@jit
def row_timing(
    dims: I64,
    params: I64,
    ratio: F64,
    repeat: I64,
    lane_table: I64,
    e_rows: int,
    cols_fixed: int,
    chain: int,
    cols_pot: int,
    bytes_per_cycle: float,
    dram_latency_cycles: int,
    succ: I64,
    wait_head: I64,
) -> tuple[I64, int]:
    """Timing of every oriented row (columns): ``dims`` (3, rows) m, n, k; ``params`` (5, rows)
    wb, ab, Tm, Tn, Tk (clipped); ``ratio`` its PoT ratio; ``repeat`` its heads; ``lane_table``
    the engine's packing modes (:func:`mode_lanes`); ``e_rows``, ``cols_fixed``, ``chain`` and
    ``cols_pot`` the engine's rows, fixed-point columns, cascade chain rows and PoT columns;
    ``succ`` (5, rows) its successor's mode (0 none), lanes, row time, element latency and rows
    of a head job (no successor on any row: no exposure and no chain figures); ``wait_head`` 1
    where it waits for a pending job by head. Returns the (:data:`OUT_ROWS`, rows) figures and
    an error code (0, or :data:`NO_POT_COLUMNS` before :data:`NO_FIXED_COLUMNS`: a tile class
    assigns channels to a sub-array the engine lacks)."""
    n_rows = dims.shape[1]
    out = np.zeros((OUT_ROWS, n_rows), dtype=np.int64)
    any_succ = False
    for r in range(n_rows):
        any_succ = any_succ or succ[0, r] > 0
    pot_bad = fix_bad = False
    # scratch, per row: only the tile classes that have tiles are computed, the others keep 0 in
    # every figure (a sum over the classes counts them 0 times, and the successor's figures
    # weigh each class by its count too, or read the last m, n and k class, which has tiles)
    ext = np.zeros(3 * 2, dtype=np.int64)  # per axis: its class extents
    cnt = np.zeros(3 * 3, dtype=np.int64)  # per axis: its class counts (m, n: 2 classes; k: 3)
    n_tiles = np.zeros(3, dtype=np.int64)
    has_rest = np.zeros(3, dtype=np.int64)
    memory = np.zeros((2, 2, 3), dtype=np.int64)
    compute = np.zeros((2, 2, 3), dtype=np.int64)
    slot = np.zeros((2, 2, 3), dtype=np.int64)
    tile_bytes = np.zeros(12, dtype=np.float64)
    s = np.zeros((2, 2), dtype=np.int64)
    g = np.zeros((2, 2), dtype=np.int64)
    s_row = np.zeros(2, dtype=np.int64)
    within = np.zeros(2, dtype=np.int64)  # per m class: the stalls within an m row
    g_end = np.zeros((2, 2), dtype=np.int64)  # last group of an m row → first of the next
    for r in range(n_rows):
        wb, ab = params[0, r], params[1, r]
        for axis in range(3):
            tile = params[2 + axis, r]
            q, rest = divmod(dims[axis, r], tile)
            has_rest[axis] = 1 if rest > 0 else 0
            n_tiles[axis] = q + has_rest[axis]
            if axis < 2:
                ext[2 * axis], ext[2 * axis + 1] = tile, rest
                cnt[3 * axis], cnt[3 * axis + 1] = q, has_rest[axis]
        tk, rest_k = params[4, r], dims[2, r] % params[4, r]
        k_ext = (tk, tk, rest_k)
        k_cnt = (n_tiles[2] - 1, 1 - has_rest[2], has_rest[2])
        n_m, n_n, n_k = n_tiles[0], n_tiles[1], n_tiles[2]
        per_c = ab / 8.0
        per_a = per_c / (n_n if n_k == 1 else 1)
        per_b = wb / (8.0 * (n_m if n_n == 1 and n_k == 1 else 1))
        nh = repeat[r]
        tokens, channels = mode_lanes(lane_table, wb, ab)
        total = 0
        compute_total = 0
        memory_total = 0
        tile_bytes[:] = 0.0
        compute[:] = 0
        memory[:] = 0
        slot[:] = 0
        for mc in range(2):
            em, cm = ext[mc], cnt[mc]
            for nc in range(2):
                en, cn = ext[2 + nc], cnt[3 + nc]
                if cm * cn == 0:
                    continue
                c_full = c_short = -1  # compute cycles of a full and of the short k tile, once each
                for kc in range(3):
                    ek, ck = k_ext[kc], k_cnt[kc]
                    if ck == 0:
                        continue
                    count = (cm * cn) * ck
                    c = c_short if kc == 2 else c_full
                    if c < 0:
                        c, en_fix, en_pot = _tile_cycles(
                            em, en, ek, ratio[r], tokens, channels, e_rows, cols_fixed, chain, cols_pot
                        )
                        pot_bad = pot_bad or (en_pot > 0 and cols_pot == 0)
                        fix_bad = fix_bad or (en_fix > 0 and cols_fixed == 0)
                        if kc == 2:
                            c_short = c
                        else:
                            c_full = c
                    b = (em * ek) * per_a + (ek * en) * per_b + ((em * en) * per_c) * (1 if kc > 0 else 0)
                    x = int(np.ceil(b / bytes_per_cycle))
                    tile_bytes[(mc * 2 + nc) * 3 + kc] = b * count
                    compute[mc, nc, kc], memory[mc, nc, kc] = c, x
                    slot[mc, nc, kc] = max(c, x)
                    total += slot[mc, nc, kc] * count
                    compute_total += c * count
                    memory_total += x * count
        tm, tn = params[2, r], params[3, r]
        first_bytes = tk * (tm * ab + tn * wb) / 8.0
        first_load = int(np.ceil(first_bytes / bytes_per_cycle)) + dram_latency_cycles
        latency = total * nh + first_load
        exposed = busy = g_last = wait_start = wait_x = 0
        mode = succ[0, r]
        if any_succ:
            lanes, row_time, elem_latency, head_rows = succ[1, r], succ[2, r], succ[3, r], succ[4, r]
            per_n = mode >= 2
            for mc in range(2):
                for nc in range(2):
                    s[mc, nc] = 0
                    for kc in range(3):
                        s[mc, nc] += slot[mc, nc, kc] * k_cnt[kc]
                    g[mc, nc] = 0
                    if mode == 1:  # each output tile: an element job of em × en
                        g[mc, nc] = ceil_div(ext[mc] * ext[2 + nc], lanes) + elem_latency
            for mc in range(2):
                s_row[mc] = s[mc, 0] * cnt[3] + s[mc, 1] * cnt[4]
            head_slots = s_row[0] * cnt[0] + s_row[1] * cnt[1]
            # the classes' counts per group axis: one group of class 0 where the axis collapses
            fm, hm, fn, hn = cnt[0], cnt[1], cnt[3], cnt[4]
            if mode == 3:
                fm, hm = 1, 0
            if per_n:
                fn, hn = 1, 0
            if per_n:  # the rows of an m tile (or of a head) as one group
                for mc in range(2):
                    s[mc, 0] = s_row[mc]
                if mode == 2:
                    for mc in range(2):
                        g[mc, 0] = ceil_div(ext[mc], lanes) * row_time
                else:
                    s[0, 0] = head_slots
                    g[0, 0] = ceil_div(head_rows, lanes) * row_time
            m_last, n_last = hm, hn  # the class of the last m (n) group: the short one if any
            m_first, n_first = (1 if fm == 0 else 0), (1 if fn == 0 else 0)
            for mc in range(2):  # within an m row: full n → full n, full n → short n
                within[mc] = max(fn - 1, 0) * max(g[mc, 0] - s[mc, 0], 0)
                within[mc] += hn * (1 if fn >= 1 else 0) * max(g[mc, 0] - s[mc, 1], 0)
            for a in range(2):
                for b_ in range(2):
                    g_end[a, b_] = max(g[a, n_last] - s[b_, n_first], 0)
            between = max(fm - 1, 0) * g_end[0, 0] + hm * (1 if fm >= 1 else 0) * g_end[0, 1]
            heads = g_end[m_last, m_first]
            per_head = (fm * within[0] + hm * within[1]) + between
            g_last = g[m_last, n_last]
            exposed = nh * per_head + (nh - 1) * heads + g_last
            busy = nh * (fm * (fn * g[0, 0] + hn * g[0, 1]) + hm * (fn * g[1, 0] + hn * g[1, 1]))
            # the last group's start: after the m tiles but the last (one head; all full, each
            # with its stalls, and the stalls from one to the next), or after the heads but the last
            if wait_head[r] > 0:
                wait_start = (nh - 1) * (head_slots + per_head) + max(nh - 2, 0) * heads
            else:
                before = cnt[0] + cnt[1] - 1
                wait_start = before * (s_row[0] + within[0]) + max(before - 1, 0) * g_end[0, 0]
            wait_start += first_load
            # the transfer of the tile before that group (the last tile of m tile n_m − 2, or
            # of head H − 2): a DMA answer takes ≥ 2 cycles
            m_at = cnt[1] if wait_head[r] > 0 else 0
            wait_x = max(memory[m_at, cnt[4], 1 + has_rest[2]], 2)
        out[0, r] = latency + exposed
        out[1, r] = int(np.rint(_pairwise12(tile_bytes) * nh))
        out[2, r] = exposed
        out[3, r] = busy
        out[4, r] = g_last
        out[5, r] = wait_start
        out[6, r] = wait_x
        out[7, r] = compute_total * nh
        out[8, r] = memory_total * nh + first_load
        out[9, r] = n_m * n_n * n_k * nh
    return out, NO_POT_COLUMNS if pot_bad else NO_FIXED_COLUMNS if fix_bad else 0


@jit
def layer_timing(
    per_row: I64,
    alternative: I64,
    chain_p: I64,
    chain_c: I64,
    chain_head: I64,
    m: I64,
    tm: I64,
    chains_on: bool,
    release_offset: int,
    repeat: I64,
) -> tuple[I64, npt.NDArray[np.bool_], npt.NDArray[np.bool_], I64, I64]:
    """Per layer (columns of the result, rows as :func:`row_timing`'s): each activation ×
    activation layer in its faster orientation (its row ``alternative[i]`` where that one's
    latency is lower), then, with ``chains_on``, each chain's last job left pending
    (:func:`hwmodel.model.evaluation._chains`: producer ``chain_p``, consumer ``chain_c``, by
    head where ``chain_head``) where its consumer has a group before the one that reads it (the
    consumer's last head; or its last m tile of ``tm`` rows when it has two or more and the
    producer's last m tile starts in it): the producer loses the job ``g`` and gains the
    consumer's wait ``max(0, g + release_offset + wait transfer − wait start)``, in its latency
    and exposed cycles. Returns (figures, transposed, deferred, each figure summed over the
    layers, waits): ``waits`` (2, layers) is, per consumer of a pending job, the group that
    reads it — its index in :data:`hwmodel.arch.controller.WAITS` (0: the last of its m tiles of
    ``tm`` rows; 1: the last of its ``repeat`` heads, given per oriented row, the layers' rows
    first) — and that group's index d; (−1, 0) on every other layer."""
    n_layers = alternative.shape[0]
    transposed = np.zeros(n_layers, dtype=np.bool_)
    deferred = np.zeros(n_layers, dtype=np.bool_)
    waits = np.zeros((2, n_layers), dtype=np.int64)
    waits[0] = -1
    out = np.empty((per_row.shape[0], n_layers), dtype=np.int64)
    for i in range(n_layers):
        j = alternative[i]
        transposed[i] = per_row[0, j] < per_row[0, i]
        src = j if transposed[i] else i
        for f in range(per_row.shape[0]):
            out[f, i] = per_row[f, src]
    for ch in range(chain_p.shape[0] if chains_on else 0):
        p, c = chain_p[ch], chain_c[ch]
        g = out[4, p]
        if g <= 0:
            continue
        if chain_head[ch] == 0:
            n_mc = ceil_div(m[c], tm[c])
            rows_p = (ceil_div(m[p], tm[p]) - 1) * tm[p]  # the pending rows start here
            if n_mc < 2 or rows_p // tm[c] != n_mc - 1:
                continue
            waits[0, c], waits[1, c] = 0, n_mc - 1
        else:
            waits[0, c], waits[1, c] = 1, repeat[c] - 1
        delay = max(g + release_offset + out[6, c] - out[5, c], 0)
        out[0, p] += delay - g
        out[2, p] += delay - g
        deferred[p] = True
    totals = np.zeros(out.shape[0], dtype=np.int64)
    for f in range(out.shape[0]):
        for i in range(n_layers):
            totals[f] += out[f, i]
    return out, transposed, deferred, totals, waits
