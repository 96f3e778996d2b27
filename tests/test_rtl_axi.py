"""The AXI4 interconnect (PyRTL): several DMA readers and writers on one DRAM port move their
windows bit-exact (:func:`hwmodel.arch.program.read_operand` / ``write_operand``), every master
gets its own bursts' beats and responses, the shared address is held while not taken, and one
master behind the interconnect takes the cycles it takes alone (plus ``LATENCY_CYCLES``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyrtl
from hypothesis import given, settings
from hypothesis import strategies as st
from test_rtl_dma import IMAGE_BYTES, reference, stored, transfers

from hwmodel.arch.dma import DmaConfig, Window, bursts, read_cycles, write_cycles
from hwmodel.arch.program import Operand
from hwmodel.rtl.axi import LATENCY_CYCLES, read_interconnect, write_interconnect
from hwmodel.rtl.block import fresh_block, output_port
from hwmodel.rtl.dma import (
    _TRANSFER_PORTS,
    read_channel_inputs,
    read_channel_wires,
    reader,
    transfer_values,
    write_channel_inputs,
    write_channel_wires,
    writer,
)
from hwmodel.rtl.dram import Dram

Transfer = tuple[Operand, Window]


def _transfer_ports(prefix: str) -> dict[str, pyrtl.WireVector]:
    return {name: pyrtl.Input(width, f"{prefix}{name}") for name, width in _TRANSFER_PORTS}


def build(cfg: DmaConfig, n_read: int, n_write: int, in_flight: int) -> None:
    """``n_read`` readers ``r<i>_*`` and ``n_write`` writers ``w<j>_*`` (each its own ``start``,
    transfer inputs and stream ports) on one DRAM port ``m_*`` through the interconnect."""
    fresh_block()
    if n_read:
        channels = [read_channel_wires(cfg.data_bits) for _ in range(n_read)]
        readers = []
        for i, ch in enumerate(channels):
            r = reader(cfg, pyrtl.Input(1, f"r{i}_start"), _transfer_ports(f"r{i}_"), ch)
            readers.append(r)
            for name in ("valid", "data", "count"):
                output_port(f"r{i}_out_{name}", getattr(r.stream, name))
            output_port(f"r{i}_done", r.done)
        port = read_interconnect(readers, channels, read_channel_inputs(cfg.data_bits), in_flight)
        for name, wire in port.ports(cfg.data_bits).items():
            output_port(name, wire)
    if n_write:
        wchannels = [write_channel_wires() for _ in range(n_write)]
        writers = []
        for j, wch in enumerate(wchannels):
            width = cfg.elems_per_cycle * cfg.max_bits
            w = writer(
                cfg,
                pyrtl.Input(1, f"w{j}_start"),
                _transfer_ports(f"w{j}_"),
                wch,
                pyrtl.Input(1, f"w{j}_in_valid"),
                pyrtl.Input(width, f"w{j}_in_data"),
            )
            writers.append(w)
            output_port(f"w{j}_in_ready", w.in_ready)
            output_port(f"w{j}_done", w.done)
        wport = write_interconnect(writers, wchannels, write_channel_inputs(), in_flight)
        for name, wire in wport.ports(cfg.data_bits).items():
            output_port(name, wire)


@dataclass(frozen=True)
class Run:
    values: list[np.ndarray]  # each reader's window
    image: np.ndarray
    read_done: list[int]  # each master's done cycle minus its start cycle
    write_done: list[int]
    dram: Dram


def simulate(
    mem: np.ndarray,
    cfg: DmaConfig,
    reads: list[tuple[Transfer, int]],
    writes: list[tuple[Transfer, np.ndarray, int]],
    latency: int,
    bytes_per_cycle: float | None,
    in_flight: int = 16,
    addr_ready: list[int] | None = None,
) -> Run:
    """Each reader / writer starts its transfer at its cycle; ``addr_ready``: the port's
    ``arready`` / ``awready`` per cycle (default always 1)."""
    build(cfg, len(reads), len(writes), in_flight)
    sim = pyrtl.FastSimulation()
    dram = Dram(mem.copy(), cfg.data_bits, latency, bytes_per_cycle, reads=bool(reads), writes=bool(writes))
    mask, max_bits, elems = (1 << cfg.max_bits) - 1, cfg.max_bits, cfg.elems_per_cycle
    got: list[list[int]] = [[] for _ in reads]
    rdone: list[int | None] = [None] * len(reads)
    wdone: list[int | None] = [None] * len(writes)
    words = [
        [v[r, c : min(c + elems, win.cols)] for r in range(win.rows) for c in range(0, win.cols, elems)]
        for (_, win), v, _ in writes
    ]
    held: tuple[int, int, int] | None = None
    # a generous bound (each master alone, one after another, four times over): a routing
    # fault that starves a master fails fast
    alone = sum(read_cycles(op, win, cfg, latency, bytes_per_cycle) for (op, win), _ in reads)
    alone += sum(write_cycles(op, win, cfg, latency, bytes_per_cycle) for (op, win), _, _ in writes)
    for cycle in range(4 * alone + 200 + max(at for *_, at in [*reads, *writes])):
        inputs = dram.inputs(cycle)
        ready = 1 if addr_ready is None else addr_ready[cycle % len(addr_ready)]
        if reads:
            inputs["m_arready"] = ready
        if writes:
            inputs["m_awready"] = ready
        for i, ((op, win), at) in enumerate(reads):
            values = transfer_values(op, win) if cycle == at else dict.fromkeys(transfer_values(op, win), 0)
            inputs |= {f"r{i}_start": int(cycle == at), **{f"r{i}_{k}": v for k, v in values.items()}}
        for j, ((op, win), _, at) in enumerate(writes):
            values = transfer_values(op, win) if cycle == at else dict.fromkeys(transfer_values(op, win), 0)
            word = sum(
                (int(x) & mask) << (e * max_bits) for e, x in enumerate(words[j][0] if words[j] else ())
            )
            inputs |= {
                f"w{j}_start": int(cycle == at),
                **{f"w{j}_{k}": v for k, v in values.items()},
                f"w{j}_in_valid": int(cycle > at and bool(words[j])),
                f"w{j}_in_data": word,
            }
        sim.step(inputs)
        # an address not taken stays on the port unchanged (AXI), then the DRAM sees it taken
        for ch in (("ar",) if reads else ()) + (("aw",) if writes else ()):
            shown = (sim.inspect(f"m_{ch}valid"), sim.inspect(f"m_{ch}addr"), sim.inspect(f"m_{ch}len"))
            if held is not None and ch == "ar":
                assert shown == held
            if ch == "ar":
                held = shown if shown[0] and not ready else None
        for j in range(len(writes)):
            if inputs[f"w{j}_in_valid"] and sim.inspect(f"w{j}_in_ready"):
                words[j].pop(0)
            if sim.inspect(f"w{j}_done") and wdone[j] is None:
                wdone[j] = cycle - writes[j][2]

        dram.observe(cycle, lambda name, r=ready: taken(sim, name, r))
        for i, ((op, _), at) in enumerate(reads):
            if sim.inspect(f"r{i}_out_valid"):
                word = sim.inspect(f"r{i}_out_data")
                for e in range(sim.inspect(f"r{i}_out_count")):
                    code = word >> (e * max_bits) & mask
                    got[i].append(code - (1 << max_bits) if op.signed and code >> (max_bits - 1) else code)
            if sim.inspect(f"r{i}_done") and rdone[i] is None:
                rdone[i] = cycle - at
        if all(d is not None for d in rdone + wdone):
            break
    else:
        raise RuntimeError("the masters did not finish")
    values = [
        np.array(g, dtype=np.int64).reshape(win.rows, win.cols)
        for g, ((_, win), _) in zip(got, reads, strict=True)
    ]
    return Run(values, dram.image, [int(d or 0) for d in rdone], [int(d or 0) for d in wdone], dram)


def taken(sim: pyrtl.FastSimulation, name: str, ready: int) -> int:
    """What the DRAM sees: an address only when the port's ready took it."""
    value = int(sim.inspect(name))
    return value & ready if name in ("m_arvalid", "m_awvalid") else value


def shifted(t: Transfer, base: int) -> Transfer:
    op, win = t
    return Operand(op.addr + base, op.row_stride, op.head_stride, op.bits, op.signed), win


def values_for(op: Operand, win: Window, seed: int) -> np.ndarray:
    lo, hi = (-(1 << (op.bits - 1)), (1 << (op.bits - 1)) - 1) if op.signed else (0, (1 << op.bits) - 1)
    return np.random.default_rng(seed).integers(lo, hi + 1, (win.rows, win.cols))


def expected_image(mem: np.ndarray, writes: list[tuple[Transfer, np.ndarray, int]]) -> np.ndarray:
    want = mem.copy()
    for (op, win), v, _ in writes:
        stored(want, op, win, v)
    return want


BUSES = st.sampled_from(((32, 1), (64, 4), (128, 8)))


@settings(max_examples=12, deadline=None)
@given(
    st.lists(transfers(), min_size=1, max_size=3),
    st.lists(transfers(byte_aligned=True), min_size=0, max_size=2),
    BUSES,
    st.integers(1, 4),
    st.integers(1, 20),
    st.sampled_from((None, 3.0, 16.0)),
    st.lists(st.integers(0, 12), min_size=5, max_size=5),
    st.integers(0, 2**32 - 1),
)
def test_masters_on_one_port_move_their_windows_bit_exact(
    reads: list[Transfer],
    writes: list[Transfer],
    bus: tuple[int, int],
    ahead: int,
    latency: int,
    bytes_per_cycle: float | None,
    starts: list[int],
    seed: int,
) -> None:
    """Readers read region 0 of the image, writer ``j`` writes region ``j + 1``: every reader
    gets its window, the image ends as the reference stores leave it, each master's bursts are
    the port's in its order."""
    cfg = DmaConfig(bus[0], bus[1], 16, 4, ahead)
    mem = np.random.default_rng(seed).integers(0, 256, (1 + len(writes)) * IMAGE_BYTES, dtype=np.uint8)
    write_list = [
        (shifted(t, (j + 1) * IMAGE_BYTES), values_for(t[0], t[1], seed + j), starts[j + 3])
        for j, t in enumerate(writes)
    ]
    read_list = [(t, starts[i]) for i, t in enumerate(reads)]
    run = simulate(mem, cfg, read_list, write_list, latency, bytes_per_cycle, in_flight=4)
    for got, ((op, win), _) in zip(run.values, read_list, strict=True):
        np.testing.assert_array_equal(got, reference(mem, op, win))
    np.testing.assert_array_equal(run.image, expected_image(mem, write_list))
    # the port carried exactly the masters' bursts, each master's in its own order
    port_reads = list(run.dram.bursts())
    assert sorted(port_reads) == sorted(
        (b.addr, b.beats) for (op, win), _ in read_list for b in bursts(op, win, cfg)
    )
    if writes:
        assert sorted(run.dram.write_bursts()) == sorted(
            (b.addr, b.beats) for ((op, win), _, _) in write_list for b in bursts(op, win, cfg)
        )


@settings(max_examples=10, deadline=None)
@given(
    transfers(),
    transfers(byte_aligned=True),
    BUSES,
    st.integers(1, 4),
    st.integers(1, 20),
    st.sampled_from((None, 2.0, 16.0)),
    st.integers(0, 2**32 - 1),
)
def test_one_master_through_the_interconnect_takes_its_own_cycles(
    read: Transfer,
    write: Transfer,
    bus: tuple[int, int],
    ahead: int,
    latency: int,
    bytes_per_cycle: float | None,
    seed: int,
) -> None:
    """A lone reader and a lone writer (each on its own channel of the port): the cycles of
    :func:`hwmodel.arch.dma.read_cycles` / ``write_cycles`` plus the interconnect's latency."""
    cfg = DmaConfig(bus[0], bus[1], 16, 4, ahead)
    mem = np.random.default_rng(seed).integers(0, 256, 2 * IMAGE_BYTES, dtype=np.uint8)
    op, win = read
    w = shifted(write, IMAGE_BYTES)
    values = values_for(w[0], w[1], seed)
    run = simulate(mem, cfg, [(read, 0)], [(w, values, 0)], latency, bytes_per_cycle)
    np.testing.assert_array_equal(run.values[0], reference(mem, op, win))
    np.testing.assert_array_equal(run.image, expected_image(mem, [(w, values, 0)]))
    assert run.read_done == [read_cycles(op, win, cfg, latency, bytes_per_cycle) + LATENCY_CYCLES]
    assert run.write_done == [write_cycles(*w, cfg, latency, bytes_per_cycle) + LATENCY_CYCLES]


@settings(max_examples=10, deadline=None)
@given(
    st.lists(transfers(max_rows=2, max_cols=12), min_size=2, max_size=3),
    st.lists(st.integers(0, 1), min_size=3, max_size=9),
    st.lists(st.integers(0, 6), min_size=3, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_an_address_the_port_does_not_take_stays_granted(
    reads: list[Transfer], ready: list[int], starts: list[int], seed: int
) -> None:
    """``arready`` low in some cycles, masters starting at different cycles (one that starts
    asking while another's address waits must not take its place): the shared address does not
    change under ``valid`` (the simulation asserts it each cycle) and every reader still gets
    its window."""
    ready = [*ready, 1]
    cfg = DmaConfig(64, 4, 16, 2, 2)
    mem = np.random.default_rng(seed).integers(0, 256, IMAGE_BYTES, dtype=np.uint8)
    run = simulate(
        mem, cfg, list(zip(reads, starts, strict=False)), [], 3, None, in_flight=3, addr_ready=ready
    )
    for got, (op, win) in zip(run.values, reads, strict=True):
        np.testing.assert_array_equal(got, reference(mem, op, win))


def test_round_robin_alternates_between_busy_readers() -> None:
    """Two readers asking every cycle: their bursts alternate on the port."""
    cfg = DmaConfig(64, 4, 16, 1, 4)
    mem = np.random.default_rng(3).integers(0, 256, IMAGE_BYTES, dtype=np.uint8)
    a = (Operand(0, 64, 0, 8, 0), Window(0, 0, 4, 0, 8))  # 4 rows of one beat
    b = (Operand(2048, 64, 0, 8, 0), Window(0, 0, 4, 0, 8))
    run = simulate(mem, cfg, [(a, 0), (b, 0)], [], 10, None)
    assert [addr // 2048 for addr, _ in run.dram.bursts()] == [0, 1, 0, 1, 0, 1, 0, 1]
