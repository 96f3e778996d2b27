"""The layer sequencer (PyRTL): it dispatches every descriptor of a program as encoded, when its
schedule (:mod:`hwmodel.arch.sequencer`) says, and reports the run through its registers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_program import descriptors

from hwmodel.arch.program import (
    HEADER_BYTES,
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_IDLE,
    Descriptor,
    decode_program,
    encode_program,
)
from hwmodel.arch.sequencer import sequencer_schedule
from hwmodel.rtl.sequencer import simulate_sequencer


def image_of(ops: list[Descriptor], base: int) -> np.ndarray:
    raw = encode_program(ops)
    mem = np.zeros(base + len(raw) + 256, dtype=np.uint8)
    mem[base : base + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return mem


@settings(max_examples=15, deadline=None)
@given(
    st.lists(descriptors(), min_size=0, max_size=5),
    st.data(),
    st.sampled_from((64, 128, 256)),
    st.integers(1, 40),
    st.sampled_from((0, 64, 4096)),
)
def test_the_sequencer_dispatches_each_descriptor_on_schedule(
    ops: list[Descriptor], data: st.DataObject, data_bits: int, latency: int, base: int
) -> None:
    cycles = data.draw(st.lists(st.integers(1, 120), min_size=len(ops), max_size=len(ops)))
    mem = image_of(ops, base)
    run = simulate_sequencer(mem, base, lambda i: cycles[i], data_bits, latency)
    assert list(run.ops) == [tuple(d.values()) for d in decode_program(mem[base:].data)]
    want = sequencer_schedule(cycles, data_bits, latency)
    assert [s - run.start_cycle for s in run.starts] == list(want.starts)
    assert [d - run.start_cycle for d in run.dones] == list(want.dones)
    assert run.cycles == want.cycles
    assert run.status == STATUS_DONE | STATUS_IDLE and run.ops_done == len(ops)


def test_long_ops_hide_the_fetch() -> None:
    """Ops longer than a descriptor fetch: each starts in the cycle after the previous op's done."""
    ops = [Descriptor(f"op{i}", 1 + i % 4, m=i) for i in range(6)]
    run = simulate_sequencer(image_of(ops, 0), 0, lambda i: 200, 128, 20)
    assert [s - d for s, d in zip(run.starts[1:], run.dones, strict=False)] == [1] * 5


def test_a_bad_header_ends_the_run_with_an_error() -> None:
    mem = image_of([Descriptor("x", 1)], 0)
    mem[:HEADER_BYTES] = 0
    run = simulate_sequencer(mem, 0, lambda i: 5)
    assert run.ops == () and run.status == STATUS_ERROR | STATUS_IDLE
