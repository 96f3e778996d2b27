"""ViT workload: the ordered GEMMs and non-linear ops of a timm VisionTransformer.

Layer names come from :mod:`hwmodel.vit` (timm module names like ``blocks.3.mlp.fc1`` plus
``blocks.{i}.attn.qk`` / ``blocks.{i}.attn.sv`` for the per-head activation×activation matmuls),
the naming the quantization config (``codesign.quant``) uses too. A GEMM is C[M×N] = A[M×K]·B[K×N]
repeated ``repeat`` times (once per head for qk/sv); B is a weight matrix when ``weight_operand``
is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from hwmodel.errors import UserError
from hwmodel.timm_compat import import_timm
from hwmodel.vit import (
    BLOCK_GEMMS,
    HEAD,
    PATCH_EMBED,
    block_layer,
    check_model_name,
    has_linear_head,
    vit_blocks,
)

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
    )


def workload_from_name(model_name: str, **model_kwargs: Any) -> Workload:
    """Workload of a timm model by name (built on the meta device: no weights, no download)."""
    check_model_name(model_name)
    with torch.device("meta"):
        model = import_timm().create_model(model_name, pretrained=False, **model_kwargs)
    return workload_from_model(model, model_name)
