"""The tile DMA (PyRTL): the reader brings any window of a bit-packed operand bit-exact
(:func:`hwmodel.arch.program.read_operand`) in the cycles :func:`hwmodel.arch.dma.read_cycles`
says; the writer stores a window as :func:`hwmodel.arch.program.write_operand` does, touches no
byte outside it, in the cycles :func:`hwmodel.arch.dma.write_cycles` says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hwmodel.arch.dma import (
    BOUNDARY_BYTES,
    DmaConfig,
    Window,
    bursts,
    check_write_alignment,
    read_cycles,
    row_start_bit,
    write_cycles,
)
from hwmodel.arch.program import Operand, read_operand, write_operand
from hwmodel.rtl.dma import reader_verilog, simulate_reader, simulate_writer, writer_verilog
from hwmodel.rtl.dsp import port_decls
from hwmodel.rtl.verilog import cosimulate_verilog, iverilog_available, synthesize_verilog

IMAGE_BYTES = 3 * BOUNDARY_BYTES


@st.composite
def transfers(
    draw: st.DrawFn, max_rows: int = 3, max_cols: int = 24, byte_aligned: bool = False
) -> tuple[Operand, Window]:
    """An operand (any width 1–16, signedness, byte address, strides) and a window inside it;
    ``byte_aligned``: the first column and the strides in units of ``8 / gcd(bits, 8)`` elements,
    so that every window row starts on a byte boundary (what the writer accepts), and the columns
    too or not (a row then ends inside a byte)."""
    bits = draw(st.integers(1, 16))
    unit = 8 // int(np.gcd(bits, 8)) if byte_aligned else 1
    col_unit = unit if byte_aligned and draw(st.booleans()) else 1
    rows, cols = draw(st.integers(1, max_rows)), col_unit * draw(st.integers(1, max_cols // col_unit))
    head, row0, col0 = (
        draw(st.integers(0, 2)),
        draw(st.integers(0, 3)),
        unit * draw(st.integers(0, 9 // unit + 1)),
    )
    row_stride = unit * -(-(col0 + cols) // unit) + unit * draw(st.integers(0, 40 // unit))
    head_stride = draw(
        st.sampled_from((0, (row0 + rows) * row_stride + unit * draw(st.integers(0, 30 // unit))))
    )
    span_bits = (head * head_stride + (row0 + rows) * row_stride) * bits
    addr = draw(st.integers(0, IMAGE_BYTES - span_bits // 8 - 8))
    return Operand(addr, row_stride, head_stride, bits, draw(st.integers(0, 1))), Window(
        head, row0, rows, col0, cols
    )


def reference(mem: np.ndarray, op: Operand, win: Window) -> np.ndarray:
    shape = (win.head + 1, win.row0 + win.rows, win.col0 + win.cols)
    return read_operand(mem, op, shape)[win.head, win.row0 :, win.col0 :]


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, IMAGE_BYTES, dtype=np.uint8)


def configs(buses: tuple[tuple[int, int], ...]) -> st.SearchStrategy[DmaConfig]:
    return st.builds(
        lambda bus, burst, ahead: DmaConfig(bus[0], bus[1], 16, burst, ahead),
        st.sampled_from(buses),
        st.integers(1, 8),
        st.integers(1, 3),
    )


@settings(max_examples=25, deadline=None)
@given(
    transfers(),
    configs(((32, 1), (64, 2), (64, 4), (128, 4), (128, 8))),
    st.integers(1, 20),
    st.sampled_from((None, 2.0, 7.5, 16.0)),
    st.integers(0, 2**32 - 1),
)
def test_the_reader_is_bit_exact_and_takes_the_modelled_cycles(
    transfer: tuple[Operand, Window], cfg: DmaConfig, latency: int, bytes_per_cycle: float | None, seed: int
) -> None:
    op, win = transfer
    mem = image(seed)
    run = simulate_reader(mem, op, win, cfg, latency, bytes_per_cycle)
    np.testing.assert_array_equal(run.values, reference(mem, op, win))
    assert list(run.bursts) == [(b.addr, b.beats) for b in bursts(op, win, cfg)]
    assert run.cycles == read_cycles(op, win, cfg, latency, bytes_per_cycle)


def test_bursts_respect_4k_and_the_burst_cap() -> None:
    op = Operand(BOUNDARY_BYTES - 40, 1000, 0, 8, 0)
    plan = bursts(op, Window(0, 0, 2, 0, 200), DmaConfig(128, max_burst=8))
    for b in plan:
        assert b.addr // BOUNDARY_BYTES == (b.addr + 16 * b.beats - 1) // BOUNDARY_BYTES
        assert 1 <= b.beats <= 8
    assert [b.beats for b in plan if b.row == 0] == [3, 8, 2]  # 40 bytes before 4 KiB, 160 after


def test_the_address_channel_runs_ahead_so_a_long_row_is_beat_limited() -> None:
    """One row of 256 bytes on a 128-bit bus (16 beats) in bursts of 4: with 4 bursts in flight
    the beats come back to back; with 1, each burst waits for the previous one's last beat."""
    op, win = Operand(0, 256, 0, 8, 1), Window(0, 0, 1, 0, 256)
    mem = image(1)
    ahead = simulate_reader(mem, op, win, DmaConfig(128, 8, 16, 4, 4), 20)
    serial_cfg = DmaConfig(128, 8, 16, 4, 1)
    serial = simulate_reader(mem, op, win, serial_cfg, 20)
    np.testing.assert_array_equal(ahead.values, reference(mem, op, win))
    # 16 beats, one a cycle after the latency; 2 output words a beat (8 elements of 8 bits)
    assert ahead.cycles == 1 + 20 + 2 * 16 + 1
    assert serial.cycles == read_cycles(op, win, serial_cfg, 20, None) > ahead.cycles + 2 * 20


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    transfers(max_rows=6, max_cols=200), st.sampled_from(((64, 4), (128, 8), (256, 16))), st.integers(0, 9)
)
def test_the_reader_on_bigger_windows(
    transfer: tuple[Operand, Window], bus: tuple[int, int], seed: int
) -> None:
    op, win = transfer
    mem = image(seed)
    cfg = DmaConfig(*bus)
    run = simulate_reader(mem, op, win, cfg, 30, 9.6)
    np.testing.assert_array_equal(run.values, reference(mem, op, win))
    assert run.cycles == read_cycles(op, win, cfg, 30, 9.6)


def stored(mem: np.ndarray, op: Operand, win: Window, values: np.ndarray) -> None:
    """What the writer leaves: the reference store of ``values`` in ``win``, each row that ends
    inside a byte followed by 0 bits to that byte's end."""
    corner = row_start_bit(op, win, 0) // 8
    write_operand(mem, Operand(corner, op.row_stride, 0, op.bits, op.signed), values[None])
    for r in range(win.rows):
        end = row_start_bit(op, win, r) + win.cols * op.bits
        if end % 8:
            mem[end // 8] &= (1 << (end % 8)) - 1


def window_bytes(op: Operand, win: Window) -> np.ndarray:
    """A mask of the bytes the window's bits cover."""
    inside = np.zeros(IMAGE_BYTES, dtype=bool)
    for r in range(win.rows):
        start = row_start_bit(op, win, r)
        inside[start // 8 : -(-(start + win.cols * op.bits) // 8)] = True
    return inside


@settings(max_examples=20, deadline=None)
@given(
    transfers(byte_aligned=True),
    configs(((32, 1), (64, 2), (128, 4), (128, 8))),
    st.integers(1, 20),
    st.sampled_from((None, 2.0, 16.0)),
    st.integers(0, 2**32 - 1),
)
def test_the_writer_stores_the_window_and_nothing_else_in_the_modelled_cycles(
    transfer: tuple[Operand, Window], cfg: DmaConfig, latency: int, bytes_per_cycle: float | None, seed: int
) -> None:
    op, win = transfer
    mem = image(seed)
    rng = np.random.default_rng(seed + 1)
    lo, hi = (-(1 << (op.bits - 1)), (1 << (op.bits - 1)) - 1) if op.signed else (0, (1 << op.bits) - 1)
    values = rng.integers(lo, hi + 1, (win.rows, win.cols))
    run = simulate_writer(mem, op, win, values, cfg, latency, bytes_per_cycle)
    np.testing.assert_array_equal(reference(run.image, op, win), values)
    outside = ~window_bytes(op, win)
    np.testing.assert_array_equal(run.image[outside], mem[outside])
    want = mem.copy()
    stored(want, op, win, values)
    np.testing.assert_array_equal(run.image, want)
    assert list(run.bursts) == [(b.addr, b.beats) for b in bursts(op, win, cfg)]
    assert run.cycles == write_cycles(op, win, cfg, latency, bytes_per_cycle)


@given(transfers())
@settings(max_examples=30, deadline=None)
def test_the_writer_refuses_windows_whose_rows_start_inside_a_byte(transfer: tuple[Operand, Window]) -> None:
    op, win = transfer
    assume(any(row_start_bit(op, win, r) % 8 for r in range(win.rows)))
    with pytest.raises(ValueError, match="byte boundaries"):
        check_write_alignment(op, win)
    with pytest.raises(ValueError, match="byte boundaries"):
        simulate_writer(image(0), op, win, np.zeros((win.rows, win.cols), dtype=np.int64), DmaConfig())


def test_a_build_the_unpacker_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bits"):
        DmaConfig(64, 8, 16)
    with pytest.raises(ValueError, match="power of two"):
        DmaConfig(96, 2)


@pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed")
def test_the_exported_reader_verilog_replays_the_simulation() -> None:
    """Icarus runs the exported reader on the PyRTL run's inputs: the same elements, the same
    ``done`` cycle."""
    op, win = Operand(5, 41, 0, 7, 1), Window(0, 1, 2, 3, 13)
    mem = image(7)
    cfg = DmaConfig(32, 2, 16, 2, 2)
    run = simulate_reader(mem, op, win, cfg, 5)
    names = ["out_valid", "out_data", "out_count", "done"]
    rows = cosimulate_verilog(reader_verilog(cfg, module_name="toplevel"), run.input_vectors, names)
    got = []
    for row in rows:
        if row["out_valid"]:
            got += [(row["out_data"] >> (16 * i)) & 0xFFFF for i in range(row["out_count"])]
    signed = [g - (1 << 16) if g >> 15 else g for g in got]
    assert signed == reference(mem, op, win).reshape(-1).tolist()
    assert [i for i, row in enumerate(rows) if row["done"]] == [run.cycles]


def test_the_verilog_names_the_axi_ports() -> None:
    reader, writer = (
        port_decls(reader_verilog(DmaConfig(64, 4))),
        port_decls(writer_verilog(DmaConfig(64, 4))),
    )
    assert reader["m_rdata"] == ("input", 64) and reader["m_araddr"] == ("output", 32)
    assert reader["out_data"] == ("output", 64) and reader["m_arlen"] == ("output", 8)
    assert writer["m_wstrb"] == ("output", 8) and writer["m_wdata"] == ("output", 64)
    assert writer["in_data"] == ("input", 64) and writer["m_bvalid"] == ("input", 1)


@pytest.mark.slow
def test_the_reader_synthesises() -> None:
    r = synthesize_verilog(reader_verilog(DmaConfig(64, 4)))
    assert r.lut > 0 and r.ff > 0 and r.bram36 == 0


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 16), st.integers(1, 40), st.sampled_from((1, 2, 4, 8)), st.integers(0, 3))
def test_a_streamed_burst_takes_latency_plus_beats(beats: int, latency: int, bits: int, seed: int) -> None:
    """One beat-aligned row in one burst, the unpacker taking a whole beat a cycle: ``1 + L +
    beats + 1`` cycles (the module docstring's closed form)."""
    cfg = DmaConfig(64, 64 // bits, bits, 16, 1)
    op, win = Operand(64 * seed, 0, 0, bits, 1), Window(0, 0, 1, 0, beats * 64 // bits)
    run = simulate_reader(image(seed), op, win, cfg, latency)
    assert run.cycles == read_cycles(op, win, cfg, latency, None) == 1 + latency + beats + 1


@pytest.mark.parametrize("bits", [32, 62])
def test_wide_codes_round_trip(bits: int) -> None:
    """The program's wide tables (int32 multipliers and accumulators, 62-bit offsets) move too."""
    cfg = DmaConfig(128, 2, 64)
    op, win = Operand(3, 11, 0, bits, 1), Window(0, 1, 3, 2, 7)
    mem = image(bits)
    run = simulate_reader(mem, op, win, cfg, 4)
    np.testing.assert_array_equal(run.values, reference(mem, op, win))
    rng = np.random.default_rng(bits)
    values = rng.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1, (3, 8), dtype=np.int64)
    op, win = Operand(8, 16, 0, bits, 1), Window(0, 1, 3, 0, 8)
    wrote = simulate_writer(mem, op, win, values, cfg, 4)
    np.testing.assert_array_equal(reference(wrote.image, op, win), values)
