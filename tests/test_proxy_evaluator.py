"""The shipped default model, the real evaluator, the proxy and proxy_check."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from codesign.cli.proxy_check import entry as proxy_check_main
from codesign.models import DEFAULT_CHECKPOINT, default_record, load_default
from codesign.proxy import Evaluator, random_config
from codesign.quant import LayerQuant, QuantConfig, is_matmul_layer
from codesign.space import DEFAULT_SPACE_FILE, load_space

DEFAULT_SPACE = load_space(DEFAULT_SPACE_FILE).quant


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    model, splits = load_default()
    return Evaluator(model, splits)


def test_shipped_checkpoint_is_small_and_recorded(evaluator: Evaluator) -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size < 3 * 2**20
    record = default_record()
    assert record.test_accuracy >= 97.0
    assert evaluator.fp32_accuracy() == pytest.approx(record.test_accuracy, abs=0.01)
    assert evaluator.accuracy(QuantConfig.uniform("W32A32")) == evaluator.fp32_accuracy()


def test_w8a8_within_half_a_point(evaluator: Evaluator) -> None:
    assert evaluator.accuracy(QuantConfig.uniform("W8A8")) >= evaluator.fp32_accuracy() - 0.5


def test_integer_nonlinear_ops_accuracy_and_proxies(evaluator: Evaluator) -> None:
    """W8A8 with integer softmax / LayerNorm / GELU stays within half a point of FP32, and both
    the real evaluator and the linearised proxy see the integer operators."""
    fl, it = QuantConfig.uniform("W8A8"), QuantConfig.uniform("W8A8", nonlinear="int")
    assert evaluator.accuracy(it) >= evaluator.fp32_accuracy() - 0.5
    # the real evaluator's model and both proxies see the extra error of the integer operators
    assert evaluator.proxy_scores(it).kl < evaluator.proxy_scores(fl).kl < 0
    assert evaluator.proxy(it) < evaluator.proxy(fl) < 0
    only_nl = QuantConfig.uniform("W32A32", nonlinear="int")
    lin, fwd = evaluator.proxy(only_nl), evaluator.proxy_scores(only_nl).kl
    assert lin < 0 and fwd < 0 and 0.3 < lin / fwd < 3


def test_linearized_proxy_tracks_forward_kl(evaluator: Evaluator) -> None:
    from scipy import stats

    rng = random.Random(11)
    cfgs = [random_config(DEFAULT_SPACE, evaluator.layer_names(), rng) for _ in range(5)]
    lin = [evaluator.proxy(c) for c in cfgs]
    fwd = [evaluator.proxy_scores(c).kl for c in cfgs]
    assert all(v < 0 for v in lin)
    assert stats.kendalltau(lin, fwd).statistic > 0.5


def test_proxy_orders_precisions(evaluator: Evaluator) -> None:
    assert evaluator.proxy(QuantConfig.uniform("W32A32")) == pytest.approx(0.0, abs=1e-7)
    scores = [evaluator.proxy(QuantConfig.uniform(p)) for p in ("W8A8", "W4A6", "W2A4")]
    assert 0.0 > scores[0] > scores[1] > scores[2]
    assert evaluator.accuracy(QuantConfig.uniform("W2A4")) < evaluator.fp32_accuracy() - 5


def test_forward_proxies_of_a_random_config(evaluator: Evaluator) -> None:
    """Speed is measured by ``python -m codesign.proxy_check`` (proxy_s vs eval_s), not here."""
    names = evaluator.layer_names()
    assert len(names) == 2 + 6 * 6 and all(n in names for n in ("blocks.5.attn.sv", "head"))
    scores = evaluator.proxy_scores(random_config(DEFAULT_SPACE, names, random.Random(3)))
    fp32 = evaluator.proxy_scores(QuantConfig.uniform("W32A32"))
    assert scores.kl < 0 and fp32.kl == pytest.approx(0.0, abs=1e-7)  # −KL: 0 only for FP32
    assert 0 <= scores.agree <= 100 and fp32.agree == 100
    assert scores.ce < fp32.ce  # quantization noise raises the cross-entropy
    assert scores.seconds > 0


def test_random_configs_respect_space() -> None:
    rng = random.Random(0)
    names = [f"blocks.0.attn.{n}" for n in ("qkv", "qk", "sv", "proj")]
    for _ in range(20):
        cfg = random_config(DEFAULT_SPACE, names, rng)
        for name in names:
            lq = cfg.for_layer(name)
            if is_matmul_layer(name):
                assert lq.pot_ratio == 0 and lq.weight_bits in DEFAULT_SPACE.act_bits
            else:
                assert lq.weight_bits in DEFAULT_SPACE.weight_bits
                assert lq.pot_ratio in DEFAULT_SPACE.pot_ratio
            assert isinstance(lq, LayerQuant) and lq.act_bits in DEFAULT_SPACE.act_bits


def test_proxy_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_check_main(["--configs", "4", "--json", "--seed", "5", "--proxy", "kl"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"configs", "kendall_tau", "spearman_rho", "proxy_s", "eval_s"} <= set(out)
    assert out["configs"] == 4 and -1 <= out["kendall_tau"] <= 1
    assert 0 < out["proxy_s"] < out["eval_s"]


@pytest.mark.slow
def test_proxy_check_default_meets_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_check_main(["--configs", "40", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["configs"] == 40 and out["proxy"] == "linkl"
    assert out["spearman_rho"] > 0.8 and out["kendall_tau"] > 0.6
    assert out["proxy_s"] * 10 < out["eval_s"]


def test_proxy_check_bad_args(capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_check_main(["--configs", "1"]) == 2
    assert "error: --configs" in capsys.readouterr().err


def test_tau_ceiling_is_monotone_and_bounded() -> None:
    from codesign.cli.proxy_check import tau_ceiling

    values = [tau_ceiling(t / 20) for t in range(21)]
    assert values[0] == 0.0 and abs(values[-1] - 1.0) < 1e-12
    assert all(b > a for a, b in itertools.pairwise(values))
    # a full split is more reliable than a half: the ceiling lies above the split-half τ
    assert all(v > t / 20 for t, v in enumerate(values[1:-1], start=1))


@pytest.mark.parametrize("layer", ["patch_embed.proj", "blocks.2.mlp.fc1"])
def test_weight_terms_computed_together_equal_one_at_a_time(evaluator: Evaluator, layer: str) -> None:
    """The batched terms of several (bits, PoT ratio) choices are each choice's own term, and
    each is the first-order logit change: ⟨∂z/∂y, δW·x⟩ summed over the layer's outputs."""
    lin = evaluator.linear()
    choices = [(4, 0.0), (3, 0.5), (6, 1.0)]
    lin._weight_terms(layer, choices, "mse")
    together = {c: lin._memo[(layer, *c, "mse", "w")].clone() for c in choices}
    for c in choices:
        lin._weight_terms(layer, [c], "mse")
        assert torch.allclose(lin._memo[(layer, *c, "mse", "w")], together[c], rtol=1e-4, atol=1e-6)
    mod = evaluator.model.get_submodule(layer)
    w = mod.weight.detach()
    dw = evaluator.calibration.weight(layer, LayerQuant(4, 32, 0.0), "mse").dequantize() - w
    y = lin._fns[layer](lin._inputs[layer], dw).reshape(lin._inputs[layer].shape[0], -1)
    want = (lin._grad[layer] * y[None]).sum(-1).T  # [N, C]
    assert torch.allclose(together[(4, 0.0)], want, rtol=1e-4, atol=1e-5)
