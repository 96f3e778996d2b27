"""torch_device resolution (CUDA absent, present, several GPUs), out-of-GPU-memory as one line, the
evaluator on an explicit device, CPU copies for the exports, and the top-1 confidence interval."""

from __future__ import annotations

import pytest
import torch

from codesign.data import DataSplits, TensorSplit
from codesign.errors import UserError
from codesign.models import load_default
from codesign.proxy import Evaluator
from codesign.quant import QuantConfig, on_cpu
from codesign.results.interval import wilson_interval
from codesign.torch_device import check_device_spec, gpu_memory_guard, resolve_device


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_is_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="torch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="torch sees no CUDA GPU"):
        resolve_device("cuda:0")


def test_each_worker_takes_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 3)
    assert [resolve_device("auto", w) for w in range(4)] == [torch.device("cuda", i) for i in (0, 1, 2, 0)]
    assert resolve_device("cuda", 1) == torch.device("cuda", 1)
    assert resolve_device("cuda:2", 0) == torch.device("cuda", 2)  # a named GPU stays named
    with pytest.raises(UserError, match=r"torch sees 3 GPU\(s\)"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cpu:1", "auto:0", "CUDA", ""])
def test_bad_specs_name_the_choices(spec: str) -> None:
    with pytest.raises(UserError, match="allowed: auto, cpu, cuda, cuda:N"):
        check_device_spec(spec, "study.yaml")


def test_out_of_memory_is_one_line_naming_the_batch_key() -> None:
    with pytest.raises(UserError) as err, gpu_memory_guard(torch.device("cpu")):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")
    msg = str(err.value)
    assert "out of memory on cpu" in msg and "lower model.batch_size" in msg and "\n" not in msg


def test_out_of_memory_during_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    model, splits = load_default()
    ev = Evaluator(model, splits, proxy_images=16, calib_images=16, proxy_kind="kl", batch_size=64)
    qmodel = ev.quantized(QuantConfig.uniform("W8A8"))

    def boom(*_a: object, **_k: object) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(qmodel, "forward", boom)
    with pytest.raises(UserError, match=r"lower model\.batch_size"):
        ev.correct(qmodel)


def test_an_explicit_device_gives_the_same_accuracy() -> None:
    model, splits = load_default()
    small = DataSplits(
        train=splits.train,
        calib_x=splits.calib_x,
        calib_y=splits.calib_y,
        test=TensorSplit(splits.test.head(300), splits.test.labels[:300]),
        num_classes=10,
        class_names=splits.class_names,
        seed=0,
    )
    a = Evaluator(model, small, proxy_images=32, calib_images=32, proxy_kind="kl")
    b = Evaluator(model, small, proxy_images=32, calib_images=32, proxy_kind="kl", device=torch.device("cpu"))
    cfg = QuantConfig.uniform("W4A8P0.5")
    assert torch.equal(a.correct_for(cfg), b.correct_for(cfg)) and a.fingerprint() == b.fingerprint()
    assert a.correct_for(cfg).device.type == "cpu"
    qmodel = a.quantized(cfg)
    assert on_cpu(qmodel) is qmodel  # already on the CPU: no copy


def test_wilson_interval() -> None:
    assert wilson_interval(50.0, 100) == pytest.approx((40.3832, 59.6168), abs=1e-4)
    assert wilson_interval(100.0, 10) == pytest.approx((72.2467, 100.0), abs=1e-4)
    assert wilson_interval(0.0, 10) == pytest.approx((0.0, 27.7533), abs=1e-4)
    lo, hi = wilson_interval(97.15, 2000)
    assert lo < 97.15 < hi and hi - lo == pytest.approx(1.468, abs=1e-3)
    with pytest.raises(ValueError):
        wilson_interval(50.0, 0)
