"""Quantization-aware fine-tuning of an exported design with the quantizers it was exported with.

The starting point is the post-training model of :func:`codesign.quant.quantize_model` (same
calibration, so the same activation scales, weight scales and PoT channel masks as the export).
Training keeps those quantizers fixed and learns the weights behind them:

* every quantized weight becomes a float *latent* weight, fake-quantized on each forward pass
  with its layer's quantizer (fixed-point channels: ``fixed``; PoT channels: ``pot``; per-channel
  scales and the PoT mask of the export) through a straight-through estimator (the gradient of
  the quantized weight is passed to the latent one unchanged);
* activations pass the same quantization points with their calibrated scales, also with a
  straight-through estimator (:func:`codesign.quant._model._fq`);
* biases, LayerNorms, embeddings stay float and are trained too; with ``nonlinear: int`` the
  softmax, LayerNorm and GELU run their integer kernels (the config's variant, ``poly`` or
  ``shift``) forward, the float operator's gradient backward (straight-through,
  :class:`codesign.quant.IntNonlinear`), and an integer LayerNorm's γ, β are trained as well.

Loss: cross-entropy on the study's training split; with ``distill`` the mean of it and the
knowledge-distillation loss T²·KL(p_FP32/T ‖ p_student/T) at T = 2 from the FP32 model. AdamW,
cosine learning-rate decay, batches drawn by a seeded generator. At the end the latent weights
are quantized once more (same scales and masks) into a model :func:`codesign.quant.export_int_model`
writes like any other.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from codesign.data import DataSplits, ImageSplit, TensorSplit
from codesign.errors import UserError
from codesign.nn_attrs import tensor_attr
from codesign.quant import IntNonlinear, QuantConv2d, QuantLinear, QWeight
from codesign.quant._quantizers import fixed_codes, pot_codes, quantize_fixed, quantize_pot
from codesign.torch_device import gpu_memory_guard

DISTILL_T = 2.0


#: the step budget of fine-tuning on an image folder when none is given (epochs over ImageNet's
#: 1.28 M training images would take days)
FOLDER_STEPS = 1000


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int = 8
    #: optimiser steps; None: ``epochs`` passes over an in-memory training split, or
    #: :data:`FOLDER_STEPS` batches streamed from an image folder
    steps: int | None = None
    lr: float = 1e-4
    batch: int = 64
    weight_decay: float = 0.0
    distill: bool = False
    seed: int = 0


@dataclass(frozen=True)
class FinetuneResult:
    model: nn.Module
    #: passes over the training split the steps amount to
    epochs: float
    steps: int
    wall_s: float
    final_loss: float


class _LatentWeight(nn.Module):
    """Parametrization: latent weight → fake-quantized weight (straight-through gradient)."""

    scale: torch.Tensor
    mask: torch.Tensor

    def __init__(self, qw: QWeight) -> None:
        super().__init__()
        self.bits = qw.bits
        self.register_buffer("scale", qw.scale.float().clone())
        self.register_buffer("mask", qw.pot_mask.clone())

    def _shaped(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1, *([1] * (w.ndim - 1)))
        return self.scale.reshape(shape), self.mask.reshape(shape)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale, mask = self._shaped(w)
        q = torch.where(mask, quantize_pot(w, scale, self.bits), quantize_fixed(w, scale, self.bits))
        return w + (q - w).detach()

    def qweight(self, w: torch.Tensor) -> QWeight:
        """The integer weight of latent ``w`` (this layer's scales and PoT mask)."""
        scale, mask = self._shaped(w)
        w = w.detach()
        codes = torch.where(mask, pot_codes(w, scale, self.bits), fixed_codes(w, scale, self.bits))
        dtype = torch.int8 if self.bits <= 8 else torch.int16
        return QWeight(self.bits, codes.to(dtype), self.scale.clone(), self.mask.clone())


def _quant_modules(model: nn.Module) -> list[tuple[str, QuantLinear | QuantConv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLinear | QuantConv2d)]


def _affine_nonlinears(model: nn.Module) -> list[tuple[str, IntNonlinear]]:
    """The integer non-linear operators with an affine part (LayerNorm's γ, β)."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, IntNonlinear) and (m.weight is not None or m.bias is not None)
    ]


def trainable(ptq: nn.Module, fp32: nn.Module) -> nn.Module:
    """A trainable copy of the post-training model ``ptq``: latent weights start at the FP32
    weights of ``fp32`` (the model ``ptq`` was quantized from)."""
    model = copy.deepcopy(ptq).train()
    for name, mod in _quant_modules(model):
        weight = tensor_attr(fp32.get_submodule(name), "weight") if mod.qweight is not None else mod.weight
        mod.weight = nn.Parameter(weight.detach().clone().float())
        if mod.bias is not None:
            mod.bias = nn.Parameter(mod.bias.detach().clone())
        if mod.qweight is not None:
            parametrize.register_parametrization(mod, "weight", _LatentWeight(mod.qweight))
    for _, nl in _affine_nonlinears(model):  # an integer LayerNorm's γ, β: trained like nn.LayerNorm's
        for attr in ("weight", "bias"):
            value = getattr(nl, attr)
            if value is not None:
                setattr(nl, attr, nn.Parameter(value.detach().clone()))
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def frozen(model: nn.Module) -> nn.Module:
    """The trained model as a post-training-style model: integer weights from the latent ones,
    weights and biases buffers again, eval mode (what :func:`export_int_model` writes)."""
    out = copy.deepcopy(model).eval()
    for _, mod in _quant_modules(out):
        if parametrize.is_parametrized(mod, "weight"):
            plist: Any = getattr(mod, "parametrizations").weight  # noqa: B009 (set by torch)
            param = plist[0]
            assert isinstance(param, _LatentWeight)
            qw = param.qweight(plist.original)
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
            mod.qweight = qw
            weight = qw.dequantize()
        else:
            weight = mod.weight.detach()
        del mod.weight
        mod.register_buffer("weight", weight.clone())
        if mod.bias is not None:
            bias = mod.bias.detach().clone()
            del mod.bias
            mod.register_buffer("bias", bias)
    for _, nl in _affine_nonlinears(out):
        for attr in ("weight", "bias"):
            value = getattr(nl, attr)
            if isinstance(value, nn.Parameter):
                delattr(nl, attr)
                nl.register_buffer(attr, value.detach().clone())
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def finetune(
    ptq: nn.Module,
    fp32: nn.Module,
    splits: DataSplits,
    settings: FinetuneSettings,
    progress: Callable[[int, int, float], None] | None = None,
) -> FinetuneResult:
    """Quantization-aware training of ``ptq`` on ``splits``' training images (streamed batch by
    batch: an image folder through timm's training transform), on the device ``ptq`` is on;
    ``progress(step, steps, loss)`` after every step."""
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = trainable(ptq, fp32)
    device = next(model.parameters()).device
    teacher = fp32.eval()
    n = len(splits.train)
    if n == 0:
        raise UserError("the training split is empty: nothing to fine-tune on")
    steps = train_steps(settings, splits.train)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    t0 = time.perf_counter()
    loss_value = float("nan")
    batches = splits.train.train_batches(settings.batch, gen)
    seen = 0
    with gpu_memory_guard(device, "--batch"):
        for step in range(1, steps + 1):
            xb, yb = next(batches)
            seen += int(xb.shape[0])
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if settings.distill:
                with torch.no_grad():
                    target = F.log_softmax(teacher(xb) / DISTILL_T, dim=-1)
                student = F.log_softmax(logits / DISTILL_T, dim=-1)
                kd = F.kl_div(student, target, reduction="batchmean", log_target=True)
                loss = 0.5 * loss + 0.5 * DISTILL_T**2 * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            loss_value = loss.item()
            if progress is not None:
                progress(step, steps, loss_value)
    result = frozen(model)
    for attr in ("quant_config", "quant_act_scales"):  # what export_int_model reads
        setattr(result, attr, copy.copy(getattr(ptq, attr)))
    return FinetuneResult(result, seen / n, steps, time.perf_counter() - t0, loss_value)


def train_steps(settings: FinetuneSettings, train: ImageSplit) -> int:
    """The optimiser steps of a fine-tuning run (see :attr:`FinetuneSettings.steps`)."""
    if settings.steps is not None:
        return settings.steps
    if isinstance(train, TensorSplit):
        return math.ceil(len(train) / settings.batch) * settings.epochs
    return FOLDER_STEPS
