"""Bring your own model: timm name + local checkpoint + ImageFolder, through the same code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from codesign.errors import UserError
from codesign.models import load_user
from codesign.proxy import Evaluator
from codesign.quant import QuantConfig, quantize_model
from hwmodel.target.timm_compat import import_timm

timm = import_timm()

ARCH = {"img_size": 16, "patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}


def _write_folder(root: Path, classes: int, per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{i}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    _write_folder(root, classes=3, per_class=10)
    return root


def _checkpoint(path: Path, num_classes: int, **extra: int) -> Path:
    torch.manual_seed(0)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, **ARCH, **extra)
    torch.save(m.state_dict(), path)
    return path


def test_load_user_roundtrip(folder: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "vit.pt", 3)
    model, splits = load_user("vit_tiny_patch16_224", ckpt, folder, img_size=16, model_kwargs=ARCH)
    assert splits.num_classes == 3
    assert splits.image_shape == (3, 16, 16)
    n = len(splits.train) + splits.calib_x.shape[0] + len(splits.test)
    assert n == 30
    assert len(splits.test) == 6 and splits.calib_x.shape[0] == 3
    test_x = splits.test.head(6)
    with torch.no_grad():
        assert model(test_x).shape == (6, 3)
    # the same code path as the default model
    q = quantize_model(model, QuantConfig.uniform("W4A8"), splits.calib_x)
    ev = Evaluator(model, splits, proxy_images=3, calib_images=3)
    assert 0.0 <= ev.accuracy(QuantConfig.uniform("W4A8")) <= 100.0
    assert ev.proxy(QuantConfig.uniform("W32A32")) == pytest.approx(0.0, abs=1e-6)
    assert ev.proxy(QuantConfig.uniform("W2A4")) < 0.0
    with torch.no_grad():
        assert q(test_x).shape == (6, 3)


def test_train_val_layout(tmp_path: Path) -> None:
    _write_folder(tmp_path / "data" / "train", 2, 10)
    _write_folder(tmp_path / "data" / "val", 2, 4, seed=1)
    ckpt = _checkpoint(tmp_path / "vit.pt", 2)
    _, splits = load_user("vit_tiny_patch16_224", ckpt, tmp_path / "data", model_kwargs=ARCH)
    assert len(splits.test) == 8
    assert len(splits.train) + splits.calib_x.shape[0] == 20


def test_errors_are_one_line(folder: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "vit.pt", 5)
    cases = [
        (("vit_does_not_exist", ckpt, folder), "unknown timm model"),
        (("vit_tiny_patch16_224", tmp_path / "missing.pt", folder), "checkpoint not found"),
        (("vit_tiny_patch16_224", ckpt, tmp_path / "no_dir"), "not a directory and not one of"),
        (("vit_tiny_patch16_224", ckpt, folder), "wrong class count: .* has 5 classes, .* has 3"),
    ]
    for args, match in cases:
        with pytest.raises(UserError, match=match) as exc:
            load_user(*args, model_kwargs=ARCH)
        assert "\n" not in str(exc.value)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a torch checkpoint"):
        load_user("vit_tiny_patch16_224", bad, folder, model_kwargs=ARCH)
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        load_user("vit_tiny_patch16_224", _checkpoint(tmp_path / "v1.pt", 1), empty, model_kwargs=ARCH)
