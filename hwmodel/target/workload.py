"""ViT workload: the ordered GEMMs and non-linear ops of a timm VisionTransformer.

Layer names come from :mod:`hwmodel.target.vit` (timm module names like ``blocks.3.mlp.fc1`` plus
``blocks.{i}.attn.qk`` / ``blocks.{i}.attn.sv`` for the per-head activation×activation matmuls),
the naming the quantization config (``codesign.quant``) uses too. A GEMM is C[M×N] = A[M×K]·B[K×N]
repeated ``repeat`` times (once per head for qk/sv); B is a weight matrix when ``weight_operand``
is true.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from hwmodel.base.errors import UserError
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.vit import (
    BLOCK_GEMMS,
    HEAD,
    PATCH_EMBED,
    block_layer,
    check_model_name,
    has_linear_head,
    vit_blocks,
)


@dataclass(frozen=True)
class Architecture:
    """What a workload is rebuilt from: a timm model name and the arguments it is created with
    (recorded in an exported accelerator.json, so ``hwmodel.report --config`` prices the same model)."""

    timm_name: str
    kwargs: tuple[tuple[str, int | float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"timm_name": self.timm_name, "kwargs": dict(self.kwargs)}

    @staticmethod
    def from_dict(raw: Any, source: str) -> Architecture:
        if not isinstance(raw, dict) or not isinstance(raw.get("timm_name"), str):
            raise UserError(f"{source}: expected {{'timm_name': <timm model>, 'kwargs': {{...}}}}")
        kwargs = raw.get("kwargs", {})
        if not isinstance(kwargs, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in kwargs.values()
        ):
            raise UserError(f"{source}: key 'kwargs' must map argument names to numbers")
        return Architecture(raw["timm_name"], tuple(sorted((str(k), v) for k, v in kwargs.items())))


#: Models known by a name timm does not know. ``default_vit_mnist`` is the MNIST ViT that codesign
#: ships (``codesign.models`` builds it from this entry): a ViT-Tiny shape on 28×28 one-channel
#: digits, patch 7, dim 96, depth 6, 3 heads.
NAMED_ARCHITECTURES: Mapping[str, Architecture] = {
    "default_vit_mnist": Architecture(
        "vit_tiny_patch16_224",
        (
            ("img_size", 28),
            ("patch_size", 7),
            ("in_chans", 1),
            ("num_classes", 10),
            ("embed_dim", 96),
            ("depth", 6),
            ("num_heads", 3),
        ),
    )
}

GEMM_KINDS = ("patch_embed", "qkv", "qk", "sv", "proj", "fc1", "fc2", "head")
NONLINEAR_KINDS = ("layernorm", "softmax", "gelu")


@dataclass(frozen=True)
class GemmOp:
    """C[M×N] = A[M×K]·B[K×N], ``repeat`` independent instances (heads)."""

    name: str
    kind: str
    m: int
    n: int
    k: int
    repeat: int = 1
    weight_operand: bool = True

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.repeat

    @property
    def weight_elements(self) -> int:
        return self.k * self.n * self.repeat if self.weight_operand else 0


@dataclass(frozen=True)
class NonlinearOp:
    """A row-wise non-linear op over ``rows`` vectors of ``row_len`` elements."""

    name: str
    kind: str
    rows: int
    row_len: int

    @property
    def elements(self) -> int:
        return self.rows * self.row_len


Op = GemmOp | NonlinearOp


@dataclass(frozen=True)
class GemmArrays:
    """The GEMMs of a workload as int64 columns, for the vectorised model."""

    m: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    k: npt.NDArray[np.int64]
    repeat: npt.NDArray[np.int64]
    weight_operand: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Workload:
    """The ordered ops of one image through a ViT."""

    model_name: str
    img_size: int
    in_chans: int
    patch_size: int
    tokens: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    num_classes: int
    ops: tuple[Op, ...]
    #: how to rebuild this workload by name (None: built from an instance timm did not create)
    architecture: Architecture | None = None

    @cached_property
    def gemms(self) -> tuple[GemmOp, ...]:
        return tuple(op for op in self.ops if isinstance(op, GemmOp))

    @cached_property
    def nonlinears(self) -> tuple[NonlinearOp, ...]:
        return tuple(op for op in self.ops if isinstance(op, NonlinearOp))

    @cached_property
    def macs(self) -> int:
        return sum(op.macs for op in self.gemms)

    @property
    def weight_elements(self) -> int:
        return sum(op.weight_elements for op in self.gemms)

    def layer_names(self) -> list[str]:
        """Names of the GEMM layers, in execution order (the per-layer config keys)."""
        return [op.name for op in self.gemms]

    @cached_property
    def layer_name_set(self) -> frozenset[str]:
        return frozenset(op.name for op in self.gemms)

    @cached_property
    def nonlinear_groups(self) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        """Per non-linear kind: (positions in :attr:`nonlinears`, elements of each)."""
        out: dict[str, tuple[list[int], list[int]]] = {}
        for i, op in enumerate(self.nonlinears):
            idx, el = out.setdefault(op.kind, ([], []))
            idx.append(i)
            el.append(op.elements)
        return {k: (np.array(i, dtype=np.int64), np.array(e, dtype=np.int64)) for k, (i, e) in out.items()}

    @cached_property
    def gemm_arrays(self) -> GemmArrays:
        g = self.gemms
        return GemmArrays(
            m=np.array([op.m for op in g], dtype=np.int64),
            n=np.array([op.n for op in g], dtype=np.int64),
            k=np.array([op.k for op in g], dtype=np.int64),
            repeat=np.array([op.repeat for op in g], dtype=np.int64),
            weight_operand=np.array([op.weight_operand for op in g], dtype=np.bool_),
        )


def _as_int(value: Any) -> int:
    if isinstance(value, tuple | list):
        return int(value[0])
    return int(value)


def workload_from_model(model: torch.nn.Module, name: str | None = None) -> Workload:
    """Extract the workload of a timm ``VisionTransformer`` instance (any size, any input)."""
    blocks: list[Any] = vit_blocks(model)
    vit: Any = model  # timm is untyped: read its attributes dynamically
    pe = vit.patch_embed
    proj = pe.proj
    if not isinstance(proj, torch.nn.Conv2d):
        raise UserError("patch embedding must be a Conv2d projection")
    patch = _as_int(proj.kernel_size)
    in_chans = int(proj.in_channels)
    dim = int(proj.out_channels)
    num_patches = int(pe.num_patches)
    prefix = int(getattr(vit, "num_prefix_tokens", 1))
    tokens = num_patches + prefix
    img = _as_int(pe.img_size)
    ops: list[Op] = [GemmOp(PATCH_EMBED, "patch_embed", num_patches, dim, in_chans * patch * patch)]
    depth = len(blocks)
    heads = 0
    hidden = 0
    for i, blk in enumerate(blocks):
        attn, mlp = blk.attn, blk.mlp
        heads = int(attn.num_heads)
        head_dim = int(attn.head_dim)
        qkv_out = int(attn.qkv.out_features)
        attn_dim = heads * head_dim
        hidden = int(mlp.fc1.out_features)
        gemm = {g: block_layer(i, g) for g in BLOCK_GEMMS}
        p = f"blocks.{i}"
        ops += [
            NonlinearOp(f"{p}.norm1", "layernorm", tokens, dim),
            GemmOp(gemm["attn.qkv"], "qkv", tokens, qkv_out, int(attn.qkv.in_features)),
            GemmOp(gemm["attn.qk"], "qk", tokens, tokens, head_dim, heads, weight_operand=False),
            NonlinearOp(f"{p}.attn.softmax", "softmax", heads * tokens, tokens),
            GemmOp(gemm["attn.sv"], "sv", tokens, head_dim, tokens, heads, weight_operand=False),
            GemmOp(gemm["attn.proj"], "proj", tokens, int(attn.proj.out_features), attn_dim),
            NonlinearOp(f"{p}.norm2", "layernorm", tokens, dim),
            GemmOp(gemm["mlp.fc1"], "fc1", tokens, hidden, int(mlp.fc1.in_features)),
            NonlinearOp(f"{p}.mlp.act", "gelu", tokens, hidden),
            GemmOp(gemm["mlp.fc2"], "fc2", tokens, int(mlp.fc2.out_features), hidden),
        ]
    ops.append(NonlinearOp("norm", "layernorm", tokens, dim))
    num_classes = int(getattr(model, "num_classes", 0))
    if has_linear_head(model):
        ops.append(GemmOp(HEAD, "head", 1, int(vit.head.out_features), int(vit.head.in_features)))
    timm_name = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    architecture = None
    if isinstance(timm_name, str) and import_timm().is_model(timm_name):
        shape: dict[str, int | float] = {
            "img_size": img,
            "patch_size": patch,
            "in_chans": in_chans,
            "num_classes": num_classes,
            "embed_dim": dim,
            "depth": depth,
            "num_heads": heads,
            "mlp_ratio": hidden / dim,
        }
        architecture = Architecture(timm_name, tuple(sorted(shape.items())))
    return Workload(
        model_name=name or type(model).__name__,
        img_size=img,
        in_chans=in_chans,
        patch_size=patch,
        tokens=tokens,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_hidden=hidden,
        num_classes=num_classes,
        ops=tuple(ops),
        architecture=architecture,
    )


def workload_from_name(model_name: str, **model_kwargs: Any) -> Workload:
    """Workload of a timm model by name, or of a :data:`NAMED_ARCHITECTURES` entry (built on the
    meta device: no weights, no download)."""
    named = NAMED_ARCHITECTURES.get(model_name)
    if named is not None:
        return workload_from_architecture(named, model_name, **model_kwargs)
    return workload_from_architecture(Architecture(model_name), model_name, **model_kwargs)


def workload_from_architecture(arch: Architecture, name: str, **model_kwargs: Any) -> Workload:
    """Workload of the timm model ``arch`` describes (``model_kwargs`` override its arguments)."""
    check_model_name(arch.timm_name)
    kwargs = {**dict(arch.kwargs), **model_kwargs}
    try:
        with torch.device("meta"):
            model = import_timm().create_model(arch.timm_name, pretrained=False, **kwargs)
    except TypeError as exc:
        raise UserError(f"model {arch.timm_name!r}: bad arguments {sorted(kwargs)} ({exc})") from exc
    return workload_from_model(model, name)
