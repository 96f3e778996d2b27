"""One labelled split of images, read in batches: in memory or streamed from an image folder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch


class ImageSplit(ABC):
    """Labelled images ``[N, C, H, W]`` (normalised float32) read in batches, in a fixed order.

    Only the labels are held; the images come batch by batch (:meth:`batches`), so memory is
    bounded by a batch whatever the split's size.
    """

    @property
    @abstractmethod
    def labels(self) -> torch.Tensor:
        """``[N]`` int64 class indices, in the order :meth:`batches` yields the images."""

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""

    @abstractmethod
    def batches(
        self, batch_size: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(images, labels)`` batches of at most ``batch_size``, in split order: the images on
        ``device`` (default: the CPU), the labels on the CPU."""

    @abstractmethod
    def identity(self) -> tuple[torch.Tensor, ...]:
        """Tensors that identify the split's content (hashed into evaluator fingerprints)."""

    @abstractmethod
    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled training batches (seeded by ``generator``)."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @abstractmethod
    def prepare(self) -> None:
        """Make the first pass cheap and surface unreadable files now (a cached split decodes
        every image once here)."""

    @abstractmethod
    def head(self, n: int) -> torch.Tensor:
        """The first ``n`` images (fewer when the split is smaller) as one normalised tensor."""


class TensorSplit(ImageSplit):
    """A split held in memory (the shipped MNIST digits, small user data)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"images {tuple(x.shape)} vs labels {tuple(y.shape)}")
        self.x = x
        self.y = y

    @property
    def labels(self) -> torch.Tensor:
        return self.y

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    def batches(
        self, batch_size: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, self.x.shape[0], batch_size):
            x = self.x[i : i + batch_size]
            yield (x if device is None else x.to(device, non_blocking=True)), self.y[i : i + batch_size]

    def identity(self) -> tuple[torch.Tensor, ...]:
        return (self.x, self.y)

    def prepare(self) -> None:
        """Nothing to do: the images are in memory."""

    def head(self, n: int) -> torch.Tensor:
        return self.x[:n]

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch after epoch: a permutation of the images, cut into batches (the last one of an
        epoch may be smaller)."""
        n = int(self.x.shape[0])
        while True:
            perm = torch.randperm(n, generator=generator)
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                yield self.x[idx], self.y[idx]
