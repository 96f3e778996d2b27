"""The real evaluator (top-1 on the test split) and the fast accuracy proxy.

Built once from (model, splits): the FP32 calibration statistics (activation samples), the FP32
logits on the proxy images and every quantized weight already computed are cached, so a proxy
call is one deep copy + one forward pass on a few hundred calibration images.

Proxies (higher is better; only calibration images are used, never the test split):

* ``auto``   (the study default) ``linkl`` for ≤ :data:`MAX_CLASSES` classes, else
  :data:`ANY_CLASS_KIND` (:func:`resolve_proxy_kind`).
* ``linkl``  the linearized KL of :mod:`codesign.proxy._linear`: per-point first-order logit
  changes, cached per (layer, choice) and summed per call; no forward pass (≈ 1 ms); ≤ 64 classes.
* ``linkl_topk`` ``linkl`` over each image's ``topk`` most likely FP32 classes plus one remainder
  class, streamed over batches of images (:mod:`codesign.proxy._streamed`): any class count.
* ``fit``    the empirical-Fisher proxy (FIT): Σ diagonal Fisher × squared quantization error per
  weight and activation point (:mod:`codesign.proxy._streamed`): any class count.
* ``kl``     − mean KL(p_fp32 ‖ p_quant) of the softmax outputs (one quantized forward pass).
* ``agree``  top-1 agreement (%) of the quantized model with the FP32 model.
* ``ce``     − mean cross-entropy of the quantized model against the FP32 soft labels plus the true
  labels (a smooth accuracy estimate that also sees the labels of the calibration images).
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from codesign.atomic import write_atomic
from codesign.data import DataSplits
from codesign.errors import UserError
from codesign.proxy._linear import MAX_CLASSES, LinearizedKL, model_digest
from codesign.proxy._streamed import TOPK_CLASSES, FisherProxy, StreamedProxy, TopKLinearizedKL
from codesign.quant import Calibration, QuantConfig, layer_names, quantize_model
from codesign.space import QuantSpace
from codesign.torch_device import gpu_memory_guard

PROXY_KINDS: tuple[str, ...] = ("auto", "linkl", "linkl_topk", "fit", "kl", "agree", "ce")
FORWARD_KINDS: tuple[str, ...] = ("kl", "agree", "ce")
#: the kinds computed streamed over batches of images (:mod:`codesign.proxy._streamed`)
STREAMED_KINDS: tuple[str, ...] = ("linkl_topk", "fit")
#: the kinds whose per-choice terms are precomputed (:meth:`Evaluator.precompute`) and cached
TERM_KINDS: tuple[str, ...] = ("linkl", *STREAMED_KINDS)
#: what ``auto`` resolves to above :data:`MAX_CLASSES` classes
ANY_CLASS_KIND = "fit"


def resolve_proxy_kind(kind: str, n_classes: int) -> str:
    """``auto`` → ``linkl`` for ≤ :data:`MAX_CLASSES` classes, else :data:`ANY_CLASS_KIND`;
    any other kind as it is."""
    if kind != "auto":
        return kind
    return "linkl" if n_classes <= MAX_CLASSES else ANY_CLASS_KIND


def term_proxy(
    kind: str,
    model: nn.Module,
    images: torch.Tensor,
    calibration: Calibration,
    topk: int = TOPK_CLASSES,
    labels: torch.Tensor | None = None,
) -> LinearizedKL | StreamedProxy:
    """The proxy object of a resolved term kind (:data:`TERM_KINDS`) on ``images``; ``labels``:
    the images' labels (``fit``'s loss; None: the FP32 model's predictions)."""
    if kind == "linkl":
        return LinearizedKL(model, images, calibration)
    if kind == "fit":
        return FisherProxy(model, images, calibration, labels)
    if kind == "linkl_topk":
        return TopKLinearizedKL(model, images, calibration, topk)
    raise ValueError(f"{kind!r} has no precomputed terms (term kinds: {', '.join(TERM_KINDS)})")


#: the quantized models :meth:`Evaluator.quantized` keeps, in bytes of their tensors (the
#: default MNIST ViT: ~5 MB each; a DeiT-B: one)
MODEL_CACHE_BYTES = 256 << 20
#: test images per forward pass of the real evaluation (``model.batch_size`` in a study)
DEFAULT_BATCH = 500


def _tensor_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


@dataclass(frozen=True)
class ProxyScores:
    """The forward-pass proxy scores of one config (higher is better) and the seconds taken."""

    kl: float
    agree: float
    ce: float
    seconds: float

    def get(self, kind: str) -> float:
        return float(getattr(self, kind))


class Evaluator:
    """Scores quantization configs of one model on one dataset.

    ``proxy(config)`` is cheap (``linkl``: ≈ 1 ms once the per-layer terms are cached, see
    :meth:`precompute`; ``kl``: one forward pass, ≈ 0.1 s on the default model);
    ``accuracy(config)`` is the real top-1 (%) on the whole test split.
    """

    def __init__(
        self,
        model: nn.Module,
        splits: DataSplits,
        *,
        proxy_images: int = 256,
        calib_images: int = 256,
        proxy_kind: str = "linkl",
        batch_size: int = DEFAULT_BATCH,
        topk: int = TOPK_CLASSES,
        device: torch.device | None = None,
    ) -> None:
        if proxy_kind not in PROXY_KINDS:
            raise UserError(f"proxy_kind={proxy_kind!r}: allowed {', '.join(PROXY_KINDS)}")
        proxy_kind = resolve_proxy_kind(proxy_kind, splits.num_classes)
        if proxy_kind == "linkl" and splits.num_classes > MAX_CLASSES:
            raise UserError(
                f"proxy 'linkl' needs ≤ {MAX_CLASSES} classes (got {splits.num_classes}); "
                "use proxy_kind 'auto' or 'linkl_topk'"
            )
        n_cal = int(splits.calib_x.shape[0])
        if n_cal == 0:
            raise UserError("the calibration split is empty")
        self.device = device or torch.device("cpu")
        self.model = model.eval().to(self.device)
        self.splits = splits
        self.proxy_kind = proxy_kind
        self.batch_size = batch_size
        self.topk = topk
        calib_x, calib_y = splits.calib_x.to(self.device), splits.calib_y.to(self.device)
        self.calibration_images = calib_x[: min(calib_images, n_cal)]
        self._proxy_x = calib_x[: min(proxy_images, n_cal)]
        self._proxy_y = calib_y[: min(proxy_images, n_cal)]
        self._layer_names = layer_names(model)
        # built on first use (a re-run with nothing left to do needs none of them)
        self._linear: LinearizedKL | None = None
        self._streamed: StreamedProxy | None = None
        self._proxy_memo: dict[QuantConfig, ProxyScores] = {}
        self._acc_memo: dict[QuantConfig, torch.Tensor] = {}
        self._models: OrderedDict[QuantConfig, tuple[nn.Module, int]] = OrderedDict()
        self._fingerprint: str | None = None

    @functools.cached_property
    def calibration(self) -> Calibration:
        """Activation samples and quantized weights of the calibration images (built on first use:
        one FP32 forward pass)."""
        return Calibration(self.model, self.calibration_images)

    @functools.cached_property
    def _fp32_logp(self) -> torch.Tensor:
        with torch.no_grad():
            return F.log_softmax(self.model(self._proxy_x), dim=-1)

    def layer_names(self) -> list[str]:
        return list(self._layer_names)

    def quantized(self, config: QuantConfig) -> nn.Module:
        """The fake-quantized model of ``config``; the latest ones are kept (up to
        :data:`MODEL_CACHE_BYTES`) so a run's export reuses the models its re-scoring built.
        Callers must not change the model (copy it to train it)."""
        if config in self._models:
            self._models.move_to_end(config)
            return self._models[config][0]
        model = quantize_model(self.model, config, self.calibration)
        self._models[config] = (model, _tensor_bytes(model))
        while len(self._models) > 1 and sum(b for _, b in self._models.values()) > MODEL_CACHE_BYTES:
            self._models.popitem(last=False)
        return model

    def proxy_scores(self, config: QuantConfig) -> ProxyScores:
        if config in self._proxy_memo:
            return self._proxy_memo[config]
        t0 = time.perf_counter()
        qmodel = self.quantized(config)
        with torch.no_grad():
            logp = F.log_softmax(qmodel(self._proxy_x), dim=-1)
        p32 = self._fp32_logp.exp()
        kl = float((p32 * (self._fp32_logp - logp)).sum(-1).mean())
        agree = 100.0 * float((logp.argmax(-1) == self._fp32_logp.argmax(-1)).float().mean())
        soft = float(-(p32 * logp).sum(-1).mean())
        hard = float(F.nll_loss(logp, self._proxy_y))
        scores = ProxyScores(-kl, agree, -(soft + hard), time.perf_counter() - t0)
        self._proxy_memo[config] = scores
        return scores

    def linear(self) -> LinearizedKL:
        if self._linear is None:
            proxy = term_proxy("linkl", self.model, self._proxy_x, self.calibration)
            assert isinstance(proxy, LinearizedKL)
            self._linear = proxy
        return self._linear

    def streamed(self) -> StreamedProxy:
        """The ``linkl_topk`` or ``fit`` proxy (built on first use: the FP32 logits)."""
        if self._streamed is None:
            proxy = term_proxy(
                self.proxy_kind, self.model, self._proxy_x, self.calibration, self.topk, self._proxy_y
            )
            assert isinstance(proxy, StreamedProxy)
            self._streamed = proxy
        return self._streamed

    @property
    def terms_file(self) -> str:
        """The name of the file :meth:`precompute` caches this kind's terms in (in a run folder)."""
        return f"proxy_terms_{self.proxy_kind}.pt" if self.proxy_kind in STREAMED_KINDS else "proxy_terms.pt"

    def precompute(
        self,
        space: QuantSpace,
        config: QuantConfig | None = None,
        cache: Path | None = None,
        progress: bool = False,
        processes: int = 1,
    ) -> int:
        """Cache the proxy terms of every per-layer choice of ``space`` (``linkl``, or the
        ``linkl_topk`` / ``fit`` proxy of those kinds; methods of ``config``, default
        ``QuantConfig.uniform("W8A8")`` with the space's non-linear operators, each kernel variant
        the space names); returns the number of terms.

        ``cache``: a file that keeps the terms between runs (resumes, other workers); it is
        used only when it was written for this model and these proxy images. ``progress``: a
        progress bar over the layers. ``processes`` = 2: ``linkl``'s layers are shared with a forked
        process (the same terms, bit for bit; :meth:`LinearizedKL.precompute`).
        """
        cfg = config or QuantConfig.uniform("W8A8", nonlinear=space.nonlinear)
        choices = (space.weight_bits, space.act_bits, space.pot_ratio, cfg)
        proxy: LinearizedKL | StreamedProxy
        if self.proxy_kind in STREAMED_KINDS:
            proxy = self.streamed()
            loaded = proxy.load_terms(cache) if cache is not None and cache.is_file() else 0
            total = proxy.precompute(*choices, progress=progress, kernels=space.kernels)
        else:
            proxy = self.linear()
            loaded = proxy.load_terms(cache) if cache is not None and cache.is_file() else 0
            total = proxy.precompute(*choices, progress=progress, kernels=space.kernels, processes=processes)
        if cache is not None and total > loaded:
            write_atomic(cache, proxy.save_terms)
        return total

    def proxy(self, config: QuantConfig) -> float:
        """The default proxy (``proxy_kind``), higher is better."""
        if self.proxy_kind == "linkl":
            return self.linear().score(config)
        if self.proxy_kind in STREAMED_KINDS:
            return self.streamed().score(config)
        return self.proxy_scores(config).get(self.proxy_kind)

    def correct(self, model: nn.Module) -> torch.Tensor:
        """Per test image: does ``model`` predict the label? (bool CPU tensor, test-split order;
        the images stream from the split batch by batch)."""
        hits = []
        with torch.no_grad(), gpu_memory_guard(self.device):
            for x, y in self.splits.test.batches(self.batch_size, self.device):
                pred = model(x).argmax(-1)
                hits.append(pred.cpu() == y)
        return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)

    def top1(self, model: nn.Module) -> float:
        """Top-1 accuracy (%) of ``model`` on the test split."""
        hits = self.correct(model)
        return 100.0 * int(hits.sum()) / hits.numel() if hits.numel() else 0.0

    def correct_for(self, config: QuantConfig) -> torch.Tensor:
        """:meth:`correct` of the fake-quantized model of ``config`` (cached per config)."""
        if config not in self._acc_memo:
            self._acc_memo[config] = self.correct(self.quantized(config))
        return self._acc_memo[config]

    def accuracy(self, config: QuantConfig) -> float:
        """Real top-1 accuracy (%) of the fake-quantized model on the test split."""
        hits = self.correct_for(config)
        return 100.0 * int(hits.sum()) / hits.numel() if hits.numel() else 0.0

    def fp32_accuracy(self) -> float:
        return self.top1(self.model)

    def fingerprint(self) -> str:
        """Identifies what :meth:`accuracy` depends on besides the config: the model's weights,
        the test split, and the calibration images (activation scales). Computed once."""
        if self._fingerprint is None:
            data = (*self.splits.test.identity(), self.calibration_images)
            self._fingerprint = model_digest(self.model, data)
        return self._fingerprint


def timed(fn: Callable[[], float]) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0
