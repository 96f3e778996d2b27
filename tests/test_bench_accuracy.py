"""``codesign.bench_accuracy`` prints every key the README and the issue name, with sane values."""

from __future__ import annotations

import json

import pytest

from codesign.cli.bench_accuracy import entry

KEYS = (
    "fp32_images_per_s",
    "fake_quant_images_per_s",
    "proxy_kind",
    "proxy_precompute_s",
    "proxy_call_ms",
    "peak_rss_mb",
    "peak_gpu_mb",
    "extrapolated_study_s",
    "torch_device",
)


@pytest.mark.slow
def test_bench_accuracy_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", "deit_tiny_patch16_224", "--classes", "100", "--images", "8", "--proxy-images", "8"]
    assert entry([*args, "--calls", "3", "--torch-device", "cpu", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(KEYS) <= set(res)
    assert res["torch_device"] == "cpu" and res["peak_gpu_mb"] is None
    assert res["fp32_images_per_s"] > 0 and res["fake_quant_images_per_s"] > 0 and res["peak_rss_mb"] > 0
    assert res["proxy_call_ms"] > 0 and res["proxy_precompute_s"] > 0
    # 40 designs × 10,000 images at the measured rate at least (the JSON rounds the rate to 0.01
    # image/s and the time to 0.1 s: on a busy machine, ~2 images/s, that rounding alone is 0.3 %)
    fastest = res["fake_quant_images_per_s"] + 0.005
    assert res["extrapolated_study_s"] >= 40 * 10_000 / fastest - 0.05


def test_unknown_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry(["--model", "resnet50", "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a timm VisionTransformer" in err[0]
