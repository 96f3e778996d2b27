"""Workload extraction: op order, names and exact MAC totals."""

from __future__ import annotations

import pytest

from hwmodel.base.errors import UserError
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.workload import GemmOp, NonlinearOp, workload_from_model, workload_from_name

timm = import_timm()


def hand_macs(
    dim: int, depth: int, heads: int, mlp: int, classes: int, img: int, patch: int, chans: int
) -> int:
    patches = (img // patch) ** 2
    t = patches + 1
    hd = dim // heads
    block = t * dim * 3 * dim + 2 * heads * t * t * hd + t * dim * dim + 2 * t * dim * mlp
    return patches * dim * chans * patch * patch + depth * block + dim * classes


@pytest.mark.parametrize(
    ("name", "dim", "depth", "heads"),
    [
        ("deit_tiny_patch16_224", 192, 12, 3),
        ("deit_small_patch16_224", 384, 12, 6),
        ("deit_base_patch16_224", 768, 12, 12),
    ],
)
def test_deit_mac_totals_are_exact(name: str, dim: int, depth: int, heads: int) -> None:
    w = workload_from_name(name)
    assert w.macs == hand_macs(dim, depth, heads, 4 * dim, 1000, 224, 16, 3)
    assert w.tokens == 197 and w.depth == depth and w.num_heads == heads


@pytest.mark.parametrize(
    ("name", "dim", "depth", "heads", "patch"),
    [("vit_small_patch32_224", 384, 12, 6, 32), ("vit_tiny_patch16_224", 192, 12, 3, 16)],
)
def test_vit_variants(name: str, dim: int, depth: int, heads: int, patch: int) -> None:
    w = workload_from_name(name)
    assert w.tokens == (224 // patch) ** 2 + 1
    assert w.macs == hand_macs(dim, depth, heads, 4 * dim, 1000, 224, patch, 3)


def test_vit_b16_is_17_6_gmac() -> None:
    assert workload_from_name("deit_base_patch16_224").macs == 17_563_828_224


def test_op_order_and_names_of_a_block() -> None:
    w = workload_from_name("deit_tiny_patch16_224")
    names = [op.name for op in w.ops[:11]]
    assert names == [
        "patch_embed.proj",
        "blocks.0.norm1",
        "blocks.0.attn.qkv",
        "blocks.0.attn.qk",
        "blocks.0.attn.softmax",
        "blocks.0.attn.sv",
        "blocks.0.attn.proj",
        "blocks.0.norm2",
        "blocks.0.mlp.fc1",
        "blocks.0.mlp.act",
        "blocks.0.mlp.fc2",
    ]
    assert w.ops[-1].name == "head" and w.ops[-2].name == "norm"
    qk = next(op for op in w.gemms if op.kind == "qk")
    assert (qk.m, qk.n, qk.k, qk.repeat, qk.weight_operand) == (197, 197, 64, 3, False)
    sv = next(op for op in w.gemms if op.kind == "sv")
    assert (sv.m, sv.n, sv.k, sv.repeat, sv.weight_operand) == (197, 64, 197, 3, False)
    soft = next(op for op in w.nonlinears if op.kind == "softmax")
    assert soft.elements == 3 * 197 * 197
    assert isinstance(w.ops[0], GemmOp) and isinstance(w.ops[1], NonlinearOp)


def test_small_mnist_vit_instance() -> None:
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3
    )
    w = workload_from_model(model, "mnist_vit")
    assert w.tokens == 17 and w.in_chans == 1
    assert w.macs == hand_macs(96, 6, 3, 384, 10, 28, 7, 1)
    assert len(w.gemms) == 2 + 6 * 6
    assert w.weight_elements == sum(
        p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() >= 2
    )


def test_unknown_model_is_one_line() -> None:
    with pytest.raises(UserError, match="unknown timm model 'deit_huge_nope'"):
        workload_from_name("deit_huge_nope")


def test_non_vit_is_rejected() -> None:
    import torch

    with pytest.raises(UserError, match="not a timm VisionTransformer"):
        workload_from_model(torch.nn.Linear(3, 3))
