"""Re-scoring beside the trials: a process of its own measures exactly what the evaluator does."""

from __future__ import annotations

import time

import pytest

from codesign.context import build_context
from codesign.quant import QuantConfig
from codesign.results.rescore import quant_key
from codesign.search.ahead import RescoreAhead
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
