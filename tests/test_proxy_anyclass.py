"""The proxies for any class count (``linkl_topk``, ``fit``), ``auto`` and the contract of every kind."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from codesign.data import DataSplits
from codesign.models import load_default
from codesign.proxy import (
    ANY_CLASS_KIND,
    PROXY_KINDS,
    TERM_KINDS,
    Evaluator,
    random_config,
    resolve_proxy_kind,
)
from codesign.proxy._linear import MAX_CLASSES, LinearizedKL
from codesign.proxy._streamed import FisherProxy, StreamedProxy, TopKLinearizedKL, config_keys
from codesign.quant import Calibration, QuantConfig
from codesign.space import DEFAULT_SPACE_FILE, load_space
from codesign.study import load_study
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.vit import layer_names

DEFAULT_SPACE = load_space(DEFAULT_SPACE_FILE).quant
#: a small space for the tiny model (every term precomputed once per fixture)
CHOICES = ((2, 4, 8), (4, 8), (0.0,))


@pytest.fixture(scope="module")
def default() -> tuple[nn.Module, DataSplits, Calibration]:
    """The shipped model, its splits and a calibration on the first 32 calibration images."""
    model, splits = load_default()
    return model, splits, Calibration(model, splits.calib_x[:32])


@pytest.fixture(scope="module")
def mnist(default: tuple[nn.Module, DataSplits, Calibration]) -> tuple[nn.Module, torch.Tensor, Calibration]:
    model, splits, cal = default
    return model, splits.calib_x[:32], cal


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor, Calibration]:
    """A random-weight timm ViT with 100 classes (more than linkl's 64), small enough for CPU tests."""
    torch.manual_seed(0)
    model = import_timm().create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=100,
        img_size=32,
        patch_size=8,
        depth=2,
        embed_dim=48,
        num_heads=3,
    )
    x = torch.randn(12, 3, 32, 32)
    return model.eval(), x, Calibration(model.eval(), x)


def test_topk_with_every_class_is_linkl(mnist: tuple[nn.Module, torch.Tensor, Calibration]) -> None:
    """k ≥ C − 1: the remainder is the last class, the KL over the k + 1 categories is linkl's
    (the same δz, in each image's top-k order), also streamed over several batches."""
    model, x, cal = mnist
    lin = LinearizedKL(model, x, cal)
    cfgs = [random_config(DEFAULT_SPACE, lin.names, random.Random(s)) for s in range(3)]
    cfgs += [QuantConfig.uniform("W8A8", nonlinear="int"), QuantConfig.uniform("W3A4", softmax="log2")]
    shift = dict.fromkeys(("softmax", "layernorm", "gelu"), "shift")
    cfgs += [QuantConfig.uniform("W8A8", nonlinear="int", kernels=shift)]  # terms per kernel variant
    assert not torch.equal(lin.delta_logits(cfgs[-1]), lin.delta_logits(cfgs[-3]))
    for k in (9, 50):
        top = TopKLinearizedKL(model, x, cal, k=k, batch_bytes=32 << 20)  # batches of ~6 images
        assert top.k == 9
        top.compute([key for cfg in cfgs for key in config_keys(top.names, cfg, model)])  # one pass
        for cfg in cfgs:
            want = lin.delta_logits(cfg)
            got = top.delta_logits(cfg)
            order = top._top  # the top-9 classes, then the remainder (the 10th)
            rest = want.scatter(1, order, 0.0).sum(1, keepdim=True)
            assert torch.allclose(got, torch.cat([want.gather(1, order), rest], 1), rtol=1e-4, atol=1e-6)
            assert top.score(cfg) == pytest.approx(lin.score(cfg), rel=1e-3, abs=1e-8)


def test_topk_remainder_is_softmax_weighted(mnist: tuple[nn.Module, torch.Tensor, Calibration]) -> None:
    """k < C − 1: the remainder's δz is the softmax-weighted mean of the other classes' δz."""
    model, x, cal = mnist
    lin = LinearizedKL(model, x, cal)
    top = TopKLinearizedKL(model, x, cal, k=3)
    cfg = QuantConfig.uniform("W4A6")
    want, got = lin.delta_logits(cfg), top.delta_logits(cfg)
    z = lin._z
    mask = torch.zeros_like(z, dtype=torch.bool).scatter(1, top._top, True)
    w = z.masked_fill(mask, float("-inf")).softmax(1)
    assert torch.allclose(got[:, :3], want.gather(1, top._top), rtol=1e-4, atol=1e-6)
    assert torch.allclose(got[:, 3], (w * want).sum(1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", [TopKLinearizedKL, FisherProxy])
def test_anyclass_proxies_order_precisions(
    tiny: tuple[nn.Module, torch.Tensor, Calibration], cls: type[StreamedProxy]
) -> None:
    model, x, cal = tiny
    proxy = cls(model, x, cal)
    n = proxy.precompute(*CHOICES, QuantConfig.uniform("W8A8"))
    assert n > 0 and n == len(proxy._terms)
    fp32 = proxy.score(QuantConfig.uniform("W32A32"))
    w8, w4, w2 = (proxy.score(QuantConfig.uniform(p)) for p in ("W8A8", "W4A8", "W2A8"))
    assert fp32 == pytest.approx(0.0, abs=1e-9)
    assert fp32 > w8 > w4 > w2
    assert proxy.score(QuantConfig.uniform("W8A4")) < w8  # the activations count too
    assert proxy.compute(config_keys(proxy.names, QuantConfig.uniform("W4A4"), model)) == 0  # all cached


@pytest.mark.parametrize("cls", [TopKLinearizedKL, FisherProxy])
def test_terms_cache_round_trip(
    tiny: tuple[nn.Module, torch.Tensor, Calibration], cls: type[StreamedProxy], tmp_path: Path
) -> None:
    model, x, cal = tiny
    proxy = cls(model, x, cal)
    n = proxy.precompute(*CHOICES, QuantConfig.uniform("W8A8"))
    cfg = random_config(DEFAULT_SPACE, layer_names(model), random.Random(1))  # outside CHOICES: computed
    path = tmp_path / "terms.pt"
    assert proxy.save_terms(path) == n
    again = cls(model, x, cal)
    assert again.load_terms(path) == n
    for c in (QuantConfig.uniform("W4A8"), cfg):
        assert again.score(c) == proxy.score(c)
    other = cls(model, x[:6], cal)  # other images: another fingerprint, no cache hit
    assert other.load_terms(path) == 0
    assert cls(model, x, cal).load_terms(tmp_path / "missing.pt") == 0
    if cls is TopKLinearizedKL:
        assert TopKLinearizedKL(model, x, cal, k=2).load_terms(path) == 0  # another k


def test_auto_resolution_and_study_default(tmp_path: Path) -> None:
    assert resolve_proxy_kind("auto", MAX_CLASSES) == "linkl"
    assert resolve_proxy_kind("auto", MAX_CLASSES + 1) == ANY_CLASS_KIND == "fit"
    assert resolve_proxy_kind("fit", 10) == "fit" and resolve_proxy_kind("linkl", 1000) == "linkl"
    assert set(TERM_KINDS) <= set(PROXY_KINDS) and "auto" in PROXY_KINDS
    src = (Path(__file__).parents[1] / "studies" / "default.yaml").read_text()
    study = tmp_path / "study.yaml"
    space = Path(__file__).parents[1] / "search_spaces" / "default.yaml"
    text = src.replace("../search_spaces/default.yaml", str(space))
    study.write_text("\n".join(line for line in text.splitlines() if not line.startswith("proxy:")))
    assert load_study(study).proxy_kind == "auto"


def test_auto_is_linkl_on_the_default_model() -> None:
    """The shipped MNIST study keeps its numbers: ``auto`` is ``linkl`` there, value for value."""
    model, splits = load_default()
    auto = Evaluator(model, splits, proxy_kind="auto", proxy_images=64, calib_images=64)
    lin = Evaluator(model, splits, proxy_kind="linkl", proxy_images=64, calib_images=64)
    assert auto.proxy_kind == "linkl" and auto.terms_file == "proxy_terms.pt"
    for cfg in (
        QuantConfig.uniform("W4A6"),
        random_config(DEFAULT_SPACE, lin.layer_names(), random.Random(2)),
    ):
        assert auto.proxy(cfg) == lin.proxy(cfg)


@pytest.mark.parametrize("kind", PROXY_KINDS)
def test_every_proxy_kind_contract(
    kind: str, default: tuple[nn.Module, DataSplits, Calibration], tmp_path: Path
) -> None:
    """Every kind: FP32 scores highest, W2A4 lower; the term kinds precompute and cache their terms."""
    model, splits, cal = default  # the same 32 calibration images: quantized weights computed once

    def evaluator() -> Evaluator:
        ev = Evaluator(model, splits, proxy_kind=kind, proxy_images=32, calib_images=32)
        ev.calibration = cal
        return ev

    ev = evaluator()
    assert ev.proxy_kind in PROXY_KINDS and ev.proxy_kind != "auto"
    fp32, bad = ev.proxy(QuantConfig.uniform("W32A32")), ev.proxy(QuantConfig.uniform("W2A4"))
    assert fp32 > bad
    if ev.proxy_kind in TERM_KINDS:
        assert fp32 == pytest.approx(0.0, abs=1e-9)
        cache = tmp_path / ev.terms_file
        n = ev.precompute(DEFAULT_SPACE, cache=cache)
        assert n > 0 and cache.is_file()
        fresh = evaluator()
        assert fresh.precompute(DEFAULT_SPACE, cache=cache) == n
        assert fresh.proxy(QuantConfig.uniform("W2A4")) == pytest.approx(bad, rel=1e-6)


def test_linkl_refuses_many_classes_and_names_the_alternative(
    tiny: tuple[nn.Module, torch.Tensor, Calibration],
) -> None:
    model, x, cal = tiny
    with pytest.raises(ValueError, match="64"):
        LinearizedKL(model, x, cal)
