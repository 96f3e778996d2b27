"""A function run beside this process in a forked child, and linkl's terms shared with one."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from codesign.beside import Beside, cores
from codesign.models import load_default
from codesign.proxy._linear import LinearizedKL, _share
from codesign.quant import Calibration, QuantConfig

needs_fork = pytest.mark.skipif(sys.platform != "linux", reason="a forked child needs Linux")


@needs_fork
def test_child_sees_the_parent_memory_and_sends_its_value() -> None:
    big = torch.arange(1_000_000, dtype=torch.float32)
    job = Beside(lambda: (os.getpid(), float(big.sum()), torch.get_num_threads()))
    got = job.result()
    assert got is not None
    pid, total, threads = got
    assert pid != os.getpid() and total == float(big.sum()) and threads == 1
    assert job.result() is None  # taken once


@needs_fork
def test_a_failing_child_gives_none_and_says_why() -> None:
    def boom() -> int:
        raise ValueError("no such layer")

    job = Beside(boom)
    assert job.result() is None
    assert job.error == "ValueError: no such layer"

    dead = Beside(lambda: os._exit(3))
    assert dead.result() is None and dead.error is not None and "ended without a result" in dead.error


def test_share_balances_and_keeps_order() -> None:
    cost = {"a": 10, "b": 9, "c": 2, "d": 1, "e": 8}
    theirs = _share(list(cost), cost.__getitem__)
    mine = [n for n in cost if n not in theirs]
    assert theirs == [n for n in cost if n in theirs]  # the caller's order
    assert mine and theirs
    assert abs(sum(map(cost.__getitem__, mine)) - sum(map(cost.__getitem__, theirs))) <= max(cost.values())
    assert _share(["only"], lambda _n: 5) == []
    assert cores() >= 1


@needs_fork
def test_linkl_terms_on_two_processes_are_the_same_bits() -> None:
    """Every term (weights of every PoT ratio, inputs, attention points, integer non-linear ops),
    computed with a forked process taking half of the layers, equals the one-process term."""
    model, splits = load_default()
    x = splits.calib_x[:16]
    space = ((4, 8), (6, 8), (0.0, 0.5))
    cfg = QuantConfig.uniform("W8A8", nonlinear="int", softmax="log2")
    one, two = (LinearizedKL(model, x, Calibration(model, x)) for _ in range(2))
    am = cfg.act_calibration
    for proxy in (one, two):  # a term already there (alone, not in its layer's batch: other bits)
        proxy._weight_term("blocks.0.mlp.fc1", 4, 0.5, cfg.weight_calibration)
        for bits in space[1]:  # one operand's, not the other's
            proxy._point_term("blocks.0.attn.qk:a", bits, "fixed", am)
    n = one.precompute(*space, cfg)
    assert ("blocks.0.attn.qk:b", 6, 0.0, am, "fixed") in one._memo
    assert two.precompute(*space, cfg, processes=2) == n
    assert set(two._memo) == set(one._memo)
    for key, term in one._memo.items():
        assert torch.equal(two._memo[key], term), key
    assert two.score(QuantConfig.uniform("W4A6")) == one.score(QuantConfig.uniform("W4A6"))
