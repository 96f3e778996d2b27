"""One ViT layer naming (``hwmodel.target.vit``): the hardware workload and the quantization agree on the
GEMM layers of every model the tests and the shipped studies use."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from codesign.models import create_default_model
from codesign.quant import is_matmul_layer
from codesign.quant import layer_names as quant_layer_names
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.vit import layer_names
from hwmodel.target.workload import workload_from_model

timm = import_timm()


def _timm(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        with torch.device("meta"):  # the structure only: no weights
            model: nn.Module = timm.create_model(name, pretrained=False, **kwargs)
        return model

    return build


def _mnist_vit() -> nn.Module:
    return timm.models.vision_transformer.VisionTransformer(
        img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3
    )


MODELS: dict[str, Callable[[], nn.Module]] = {
    "shipped_default": create_default_model,
    "mnist_vit": _mnist_vit,
    "vit_tiny_28px": _timm("vit_tiny_patch16_224", img_size=28, patch_size=7, in_chans=1, num_classes=5),
    "vit_tiny_16px": _timm(
        "vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2
    ),
    "deit_tiny": _timm("deit_tiny_patch16_224"),
    "deit_small": _timm("deit_small_patch16_224"),
    "deit_base": _timm("deit_base_patch16_224"),
    "no_head": _timm("deit_tiny_patch16_224", num_classes=0),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_workload_and_quantization_name_the_same_layers(name: str) -> None:
    model = MODELS[name]()
    names = layer_names(model)
    assert workload_from_model(model, name).layer_names() == names
    assert quant_layer_names(model) == names
    assert len(set(names)) == len(names)
    for layer in names:  # every weight layer is the timm module of that name
        if not is_matmul_layer(layer):
            assert isinstance(getattr(model.get_submodule(layer), "weight", None), torch.Tensor), layer
