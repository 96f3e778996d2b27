"""Re-scoring beside the trials: a process of its own measures exactly what the evaluator does."""

from __future__ import annotations

import time

import pytest

from codesign.context import build_context
from codesign.quant import QuantConfig
from codesign.results.rescore import quant_key
from codesign.search.ahead import RescoreAhead
from codesign.search.baselines import baseline_trials
from codesign.study import DEFAULT_STUDY, load_study

pytestmark = pytest.mark.slow


def test_the_process_measures_the_latest_offer_as_the_evaluator_does() -> None:
    """One torch thread there, the default here: the same per-image predictions, so the same
    top-1; the fingerprint says it is the same model, test split and calibration."""
    study = load_study(DEFAULT_STUDY)
    evaluator = build_context(study).evaluator
    assert evaluator is not None
    first, later = QuantConfig.uniform("W3A6"), QuantConfig.uniform("W4A8P0.5")
    ahead = RescoreAhead()
    try:
        ahead.begin(study)
        ahead.offer({quant_key(first): first})
        ahead.offer({quant_key(later): later})  # replaces the first offer
        deadline = time.monotonic() + 240
        while quant_key(later) not in ahead.top1 and time.monotonic() < deadline:
            time.sleep(0.2)
            ahead.offer({quant_key(later): later})  # (also reads what the process sent)
        top1 = ahead.finish()
    finally:
        ahead.begin(None)
    assert ahead.error is None
    assert ahead.fingerprint == evaluator.fingerprint()
    assert top1[quant_key(later)] == evaluator.accuracy(later)
    assert set(top1) <= {quant_key(first), quant_key(later)}
    if quant_key(first) in top1:  # taken before the second offer arrived
        assert top1[quant_key(first)] == evaluator.accuracy(first)


def test_a_process_told_nothing_ends() -> None:
    ahead = RescoreAhead()
    ahead.begin(None)
    assert ahead.finish(timeout_s=10) == {}


def test_complete_shares_the_configs_between_both_processes() -> None:
    """After the trials both processes measure: the process from the front of the list, this one
    (after its other work) from the back; every config measured once, as the evaluator does."""
    study = load_study(DEFAULT_STUDY)
    evaluator = build_context(study).evaluator
    assert evaluator is not None
    configs = {
        quant_key(c): c
        for c in (QuantConfig.uniform(s) for s in ("W8A8", "W3A6", "W4A8P0.5", "W5A6", "W6A8P0.25", "W4A6"))
    }
    here: list[str] = []

    def measure(config: QuantConfig) -> float:
        here.append(quant_key(config))
        return evaluator.accuracy(config)

    ahead = RescoreAhead()
    meanwhile_ran: list[bool] = []

    def meanwhile() -> None:  # this one's other work: until the process has loaded the model
        deadline = time.monotonic() + 240
        while ahead.fingerprint is None and time.monotonic() < deadline:
            time.sleep(0.2)
            ahead.measured()  # (reads what the process sent)
        meanwhile_ran.append(True)

    try:
        ahead.begin(study)
        top1 = ahead.complete(configs, measure, meanwhile=meanwhile)
    finally:
        ahead.begin(None)
    assert ahead.error is None and meanwhile_ran == [True]
    assert set(top1) == set(configs)
    assert {k: top1[k] for k in configs} == {k: evaluator.accuracy(c) for k, c in configs.items()}
    assert len(here) == len(set(here))  # this process measured each of its configs once
    assert 0 < len(here) < len(configs)  # both took part
    assert here[0] == list(configs)[-1]  # this one starts from the back


def test_complete_without_the_process_measures_everything_here() -> None:
    ahead = RescoreAhead()
    ahead.begin(None)  # the process ends: nothing to share
    configs = {quant_key(c): c for c in (QuantConfig.uniform("W8A8"), QuantConfig.uniform("W4A8"))}
    top1 = ahead.complete(configs, lambda c: float(c.for_layer("x").weight_bits))
    assert top1 == {quant_key(QuantConfig.uniform("W8A8")): 8.0, quant_key(QuantConfig.uniform("W4A8")): 4.0}


def test_the_process_computes_the_studys_baselines() -> None:
    """The baselines' hardware search can run in the process (during the set-up): the same
    trials as computed here."""
    study = load_study(DEFAULT_STUDY)
    ahead = RescoreAhead()
    try:
        ahead.begin(study)
        ahead.request_baselines()
        got = ahead.baselines(timeout_s=300)
    finally:
        ahead.begin(None)
    assert ahead.error is None
    assert got is not None and [b.name for b in got] == [
        b.name for b in baseline_trials(build_context(study))
    ]
    assert got == baseline_trials(build_context(study))


def test_an_ended_process_gives_no_baselines() -> None:
    ahead = RescoreAhead()
    ahead.begin(None)
    ahead.request_baselines()
    assert ahead.baselines(timeout_s=10) is None
