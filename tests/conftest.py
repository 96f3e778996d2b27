"""Shared fixtures."""

from __future__ import annotations

import pytest

from hwmodel.timm_compat import timm
from hwmodel.workload import Workload, workload_from_model, workload_from_name


@pytest.fixture(scope="session")
def mnist_workload() -> Workload:
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3
    )
    return workload_from_model(model, "mnist_vit")


@pytest.fixture(scope="session")
def deit_base() -> Workload:
    return workload_from_name("deit_base_patch16_224")
