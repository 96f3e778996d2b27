"""Integer-only top-1 against fake-quant top-1 of one design on a split's first images.

``python -m codesign.integer_check`` (uniform designs of the default model), ``python -m
codesign.report --trial N --integer`` (an exported design) and the export's ``quant.json``
(``accuracy.integer``) all compare the two programs with :func:`compare_integer`: the
fake-quantized model and its :func:`~codesign.quant.integer_model` run on the same images, on the
CPU, and the figures are :class:`IntegerTop1`. :func:`integer_accuracy` is the export's block: the
figures when the integer program can run the design, else the one-line reason it cannot.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from codesign.data import ImageSplit
from codesign.errors import UserError
from codesign.quant import QuantConfig, check_integer_config, integer_model, on_cpu

#: Test images of the export's integer-only check unless the study or ``--integer-images`` says
#: otherwise (0: no check): about 11 s a design for the default model on a loaded 2-core machine,
#: as much as quantizing it (README, *Integer-only inference*).
DEFAULT_INTEGER_IMAGES = 200
#: What the export's ``accuracy.integer`` block holds besides ``images`` (no seconds: the file
#: stays the same when the design is exported again).
EXPORTED_FIGURES = (
    "fake_quant_top1",
    "integer_top1",
    "integer_minus_fake_quant_pt",
    "same_top1",
    "max_abs_logit_diff",
)


@dataclass(frozen=True)
class IntegerTop1:
    """One design run fake-quantized and integer-only on the first ``images`` images of a split."""

    images: int
    fake_quant_top1: float
    integer_top1: float
    integer_minus_fake_quant_pt: float
    #: images whose top-1 class is the same in both programs
    same_top1: int
    max_abs_logit_diff: float
    fake_quant_s: float
    integer_build_s: float
    integer_s: float

    def exported(self) -> dict[str, Any]:
        """The figures ``quant.json`` records (``images`` and :data:`EXPORTED_FIGURES`)."""
        return {"images": self.images, **{k: getattr(self, k) for k in EXPORTED_FIGURES}}


def first_images(split: ImageSplit, n_images: int | None, batch: int) -> Iterator[torch.Tensor]:
    """The first ``n_images`` images of ``split`` (all when ``None``), in batches, on the CPU."""
    left = len(split) if n_images is None else n_images
    for x, _ in split.batches(batch):
        if left <= 0:
            return
        yield x[:left]
        left -= x.shape[0]


def split_logits(
    model: nn.Module, split: ImageSplit, n_images: int | None, batch: int
) -> tuple[torch.Tensor, float]:
    """``model``'s float32 logits on the first images of ``split`` and the seconds it took."""
    t0 = time.perf_counter()
    with torch.no_grad():
        out = [model(x).float().cpu() for x in first_images(split, n_images, batch)]
    return (torch.cat(out) if out else torch.zeros(0, 0)), time.perf_counter() - t0


def top1_pct(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (%) of ``logits`` against ``labels`` (a count of images over their number)."""
    n = int(labels.shape[0])
    return 100.0 * int((logits.argmax(-1) == labels).sum()) / n if n else 0.0


def compare_integer(
    qmodel: nn.Module, split: ImageSplit, n_images: int | None = None, batch: int = 250
) -> IntegerTop1:
    """Run ``qmodel`` (from :func:`~codesign.quant.quantize_model` or ``load_int_model``) and its
    integer program on the first ``n_images`` images of ``split`` (all when ``None``), both on the
    CPU. A design the integer program cannot run is its one-line :class:`UserError`."""
    qmodel = on_cpu(qmodel)
    t0 = time.perf_counter()
    program = integer_model(qmodel)  # refuses first: before the fake-quant pass
    build_s = time.perf_counter() - t0
    fq, fq_s = split_logits(qmodel, split, n_images, batch)
    iz, int_s = split_logits(program, split, n_images, batch)
    labels = split.labels[: fq.shape[0]]
    fq_top1, int_top1 = top1_pct(fq, labels), top1_pct(iz, labels)
    return IntegerTop1(
        images=int(labels.shape[0]),
        fake_quant_top1=fq_top1,
        integer_top1=int_top1,
        integer_minus_fake_quant_pt=int_top1 - fq_top1,
        same_top1=int((fq.argmax(-1) == iz.argmax(-1)).sum()),
        max_abs_logit_diff=float((fq - iz).abs().max()) if fq.numel() else 0.0,
        fake_quant_s=fq_s,
        integer_build_s=build_s,
        integer_s=int_s,
    )


def integer_refusal(config: QuantConfig, layers: Sequence[str]) -> str | None:
    """Why the integer program cannot run ``config`` on a model with these layer names (its one
    line), or None when it may (a layer whose accumulators pass 32 bits is found only when the
    program is built)."""
    try:
        check_integer_config(config, layers)
    except UserError as exc:
        return str(exc)
    return None


def integer_accuracy(qmodel: nn.Module, split: ImageSplit, n_images: int, batch: int) -> dict[str, Any]:
    """The export's ``accuracy.integer`` block of a design: :meth:`IntegerTop1.exported` on the
    first ``n_images`` test images, or ``{"reason": ...}`` when the integer program cannot run it."""
    try:
        return compare_integer(qmodel, split, n_images, batch).exported()
    except UserError as exc:
        return {"reason": str(exc)}
