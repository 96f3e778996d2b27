"""The GEMM layers of a standard timm VisionTransformer: their names and the structure check.

One naming for every package: the hardware workload (:mod:`hwmodel.target.workload`) and the per-layer
quantization (:mod:`codesign.quant`) both call these functions, so a per-layer setting means the
same layer everywhere. The names, in execution order::

    patch_embed.proj
    blocks.{i}.attn.qkv  blocks.{i}.attn.qk  blocks.{i}.attn.sv  blocks.{i}.attn.proj
    blocks.{i}.mlp.fc1   blocks.{i}.mlp.fc2                       (for every block i)
    head                                                          (when the head is a Linear)

``qk`` (Q·Kᵀ) and ``sv`` (softmax·V) are the per-head activation × activation products; every
other name is a timm module holding a weight.
"""

from __future__ import annotations

from torch import nn

from hwmodel.base.errors import UserError
from hwmodel.target.timm_compat import import_timm

PATCH_EMBED = "patch_embed.proj"
HEAD = "head"
#: The GEMMs of block ``i`` in execution order, as suffixes of ``blocks.{i}.``.
BLOCK_GEMMS = ("attn.qkv", "attn.qk", "attn.sv", "attn.proj", "mlp.fc1", "mlp.fc2")
#: The activation × activation products (no weight operand).
MATMUL_KINDS = ("qk", "sv")


def block_layer(block: int, gemm: str) -> str:
    """The name of GEMM ``gemm`` (one of :data:`BLOCK_GEMMS`) of block ``block``."""
    return f"blocks.{block}.{gemm}"


def is_matmul_layer(name: str) -> bool:
    """``blocks.{i}.attn.qk`` / ``blocks.{i}.attn.sv``: activation × activation products."""
    return name.rsplit(".", 1)[-1] in MATMUL_KINDS and ".attn." in name


def check_model_name(name: str) -> None:
    """A :class:`UserError` (with close names) unless timm knows the model ``name``."""
    timm = import_timm()
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        hint = f" (did you mean: {', '.join(close)})" if close else ""
        raise UserError(f"unknown timm model '{name}'{hint}")


def vit_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of a timm ``VisionTransformer`` whose every block is a standard ViT block
    (``attn.qkv``, ``mlp.fc1``/``fc2``, no gated attention); a :class:`UserError` otherwise."""
    vit_cls = import_timm().models.vision_transformer.VisionTransformer
    if not isinstance(model, vit_cls):
        raise UserError(
            f"model {type(model).__name__} is not a timm VisionTransformer (only ViT/DeiT supported)"
        )
    blocks = list(model.blocks)
    for i, b in enumerate(blocks):
        attn = getattr(b, "attn", None)
        if not hasattr(attn, "qkv") or not hasattr(getattr(b, "mlp", None), "fc1"):
            raise UserError(f"block {i}: expected attn.qkv and mlp.fc1/fc2 (standard ViT block)")
        if getattr(attn, "gate", None) is not None:
            raise UserError(f"block {i}: gated attention is not supported")
    return blocks


def has_linear_head(model: nn.Module) -> bool:
    return isinstance(getattr(model, "head", None), nn.Linear)


def layer_names(model: nn.Module) -> list[str]:
    """The GEMM layer names of a standard timm ViT, in execution order (see the module docstring)."""
    names = [PATCH_EMBED]
    for i, _ in enumerate(vit_blocks(model)):
        names += [block_layer(i, g) for g in BLOCK_GEMMS]
    if has_linear_head(model):
        names.append(HEAD)
    return names
