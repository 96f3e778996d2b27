"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from hwmodel.target.timm_compat import import_timm
from hwmodel.target.workload import Workload, workload_from_model, workload_from_name

timm = import_timm()

# Property tests draw the same examples on every run (seeded from each test's own code), so the
# README's test command gives on CI exactly what it gave here. `explore` draws fresh ones each run
# to hunt for new counterexamples: HYPOTHESIS_PROFILE=explore python -m pytest -q (or pass
# --hypothesis-profile explore); a failure prints the @reproduce_failure blob to pin it as an @example.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def mnist_workload() -> Workload:
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=96, depth=6, num_heads=3
    )
    return workload_from_model(model, "mnist_vit")


@pytest.fixture(scope="session")
def deit_base() -> Workload:
    return workload_from_name("deit_base_patch16_224")
