"""Models: the shipped default ViT (MNIST) and bring-your-own timm models.

``load_default()`` needs no network: the fp16 state dict and its record (test accuracy, split
seed, architecture) live in ``codesign/assets/``. ``load_user()`` takes a timm model name, a local
checkpoint and an image folder (or a registered dataset name) through the same code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from codesign.data import DataSplits, FolderOptions, load_dataset, load_mnist, registered_datasets
from codesign.errors import UserError
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.vit import check_model_name, vit_blocks
from hwmodel.target.workload import NAMED_ARCHITECTURES

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_CHECKPOINT = ASSETS_DIR / "default_vit_mnist.pt"
DEFAULT_RECORD = ASSETS_DIR / "default_vit_mnist.json"
#: The workload name of the default model; its architecture is hwmodel's entry of that name, so
#: ``python -m hwmodel.report --model default_vit_mnist`` prices the same model.
DEFAULT_WORKLOAD_NAME = "default_vit_mnist"
DEFAULT_MODEL_NAME = NAMED_ARCHITECTURES[DEFAULT_WORKLOAD_NAME].timm_name
DEFAULT_MODEL_KWARGS: Mapping[str, int | float] = dict(NAMED_ARCHITECTURES[DEFAULT_WORKLOAD_NAME].kwargs)


@dataclass(frozen=True)
class DefaultRecord:
    """What ``train_default`` recorded next to the shipped checkpoint."""

    model_name: str
    model_kwargs: Mapping[str, int]
    split_seed: int
    train_seed: int
    test_accuracy: float
    epochs: int


def create_default_model() -> nn.Module:
    """The default architecture, randomly initialised (no weights loaded)."""
    kwargs: dict[str, Any] = dict(DEFAULT_MODEL_KWARGS)
    model: nn.Module = import_timm().create_model(DEFAULT_MODEL_NAME, pretrained=False, **kwargs)
    return model


def default_record() -> DefaultRecord:
    if not DEFAULT_RECORD.is_file():
        raise UserError(f"default model record missing: {DEFAULT_RECORD} (run codesign.train_default)")
    raw = json.loads(DEFAULT_RECORD.read_text())
    return DefaultRecord(
        model_name=str(raw["model_name"]),
        model_kwargs={str(k): int(v) for k, v in raw["model_kwargs"].items()},
        split_seed=int(raw["split_seed"]),
        train_seed=int(raw["train_seed"]),
        test_accuracy=float(raw["test_accuracy"]),
        epochs=int(raw["epochs"]),
    )


def load_default() -> tuple[nn.Module, DataSplits]:
    """The shipped default ViT (float32, eval mode) and its fixed MNIST split."""
    record = default_record()
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(f"default checkpoint missing: {DEFAULT_CHECKPOINT}")
    model = create_default_model()
    state = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model, load_mnist(record.split_seed)


def _read_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    if not checkpoint.exists():
        raise UserError(f"checkpoint not found: {checkpoint}")
    try:
        raw: Any = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise UserError(f"{checkpoint}: not a torch checkpoint ({exc.__class__.__name__})") from exc
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in raw and isinstance(raw[key], Mapping):
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise UserError(f"{checkpoint}: expected a state dict of tensors")
    return {str(k).removeprefix("module."): v.float() for k, v in raw.items()}


def load_user(
    model_name: str,
    checkpoint: str | Path,
    data: str | Path,
    *,
    img_size: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    options: FolderOptions | None = None,
    seed: int = 0,
) -> tuple[nn.Module, DataSplits]:
    """A timm ViT by name + a local checkpoint + an image folder (or ``mnist``).

    The class count and input channels are read from the checkpoint (``head.weight``,
    ``patch_embed.proj.weight``); the data must have the same class count. An image folder is
    read through the model's timm data config (``options.transform`` overrides it).
    """
    check_model_name(model_name)
    ckpt = Path(checkpoint)
    state = _read_state_dict(ckpt)
    kwargs: dict[str, Any] = dict(model_kwargs or {})
    if "head.weight" in state:
        kwargs.setdefault("num_classes", int(state["head.weight"].shape[0]))
    if "patch_embed.proj.weight" in state:
        kwargs.setdefault("in_chans", int(state["patch_embed.proj.weight"].shape[1]))
    if img_size is not None:
        kwargs["img_size"] = img_size
    try:
        model: nn.Module = import_timm().create_model(model_name, pretrained=False, **kwargs)
    except TypeError as exc:
        raise UserError(f"model {model_name!r}: bad arguments {sorted(kwargs)} ({exc})") from exc
    vit_blocks(model)  # a standard timm ViT, or one line saying why not
    vit: Any = model  # timm is untyped: read its attributes dynamically
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise UserError(f"{ckpt}: does not fit {model_name!r}: {first[0].strip()}") from exc
    model.eval()
    size = tuple(int(s) for s in vit.patch_embed.img_size)
    in_chans = int(vit.patch_embed.proj.in_channels)
    splits = load_dataset(data, model, options, seed)
    if splits.image_shape != (in_chans, size[0], size[1]):
        raise UserError(
            f"dataset {data}: images {splits.image_shape} but model expects "
            f"{(in_chans, *size)}; registered datasets: {', '.join(registered_datasets())}"
        )
    n_model = int(vit.num_classes)
    if splits.num_classes != n_model:
        raise UserError(f"wrong class count: {ckpt} has {n_model} classes, {data} has {splits.num_classes}")
    return model, splits
