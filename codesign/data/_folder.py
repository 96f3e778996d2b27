"""Image folders (ImageNet layout) through timm's own data pipeline, streamed.

Files are found as ``timm.data`` finds them (``find_images_and_targets``: natural-key order, class
index = the class folder's rank) and transformed by ``timm.data.create_transform`` with the
model's ``pretrained_cfg`` (input size, interpolation, ``crop_pct``, ``crop_mode``, mean, std) or a
study's overrides. Nothing holds a split in RAM: a ``torch.utils.data.DataLoader`` (workers
configurable) decodes in batches.

An evaluation split is decoded once: the eval transform's uint8 output (resize, crop: everything
before ``ToTensor``) goes to a raw file in the cache folder (``$CODESIGN_CACHE``, else
``$XDG_CACHE_HOME/codesign`` or ``~/.cache/codesign``), keyed by the files (path, size, mtime),
their labels and the transform; later passes read it back batch by batch (positioned reads: no
memory map, so the page cache, not the process, holds it) and normalise as timm's ``ToTensor`` +
``Normalize`` do, to the same bits. Without room or permission for the file, each pass decodes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codesign.data._split import ImageSplit
from codesign.errors import UserError
from hwmodel.target.timm_compat import import_timm

log = logging.getLogger("codesign.data")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos", "box", "hamming")
CROP_MODES = ("center", "squash", "border")
TRANSFORM_KEYS = ("crop_pct", "crop_mode", "interpolation", "mean", "std")
#: images one DataLoader batch decodes (workers decode whole batches)
DECODE_BATCH = 32
#: free disk the cache leaves beside itself
CACHE_MARGIN_BYTES = 1 << 30
CACHE_VERSION = 1


def cache_root() -> Path:
    """The user's cache folder for codesign (``$CODESIGN_CACHE``, ``$XDG_CACHE_HOME/codesign`` or
    ``~/.cache/codesign``)."""
    explicit = os.environ.get("CODESIGN_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "codesign"


@dataclass(frozen=True)
class ImageTransform:
    """The evaluation transform of a model (timm's data config), with a study's overrides."""

    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float
    crop_mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def for_model(cls, model: nn.Module, overrides: Mapping[str, Any] | None = None) -> ImageTransform:
        """``timm.data.resolve_data_config({}, model=model)`` with ``overrides`` (keys
        :data:`TRANSFORM_KEYS`, validated by the study) applied on top."""
        timm = import_timm()
        cfg: dict[str, Any] = dict(timm.data.resolve_data_config({}, model=model))
        vit: Any = model
        in_chans = int(vit.patch_embed.proj.in_channels)
        size = tuple(int(s) for s in vit.patch_embed.img_size)
        cfg["input_size"] = (in_chans, *size)
        if len(cfg["mean"]) != in_chans:  # e.g. a 1-channel model with ImageNet's 3-channel cfg
            cfg["mean"], cfg["std"] = (0.5,) * in_chans, (0.5,) * in_chans
        cfg.update(overrides or {})
        return cls(
            input_size=(int(cfg["input_size"][0]), int(cfg["input_size"][1]), int(cfg["input_size"][2])),
            interpolation=str(cfg["interpolation"]),
            crop_pct=float(cfg["crop_pct"]),
            crop_mode=str(cfg.get("crop_mode") or "center"),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
        )

    @property
    def image_mode(self) -> str:
        """The PIL mode images are converted to before the transform (timm: ``RGB``)."""
        return "L" if self.input_size[0] == 1 else "RGB"

    def _kwargs(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
            "mean": self.mean,
            "std": self.std,
        }

    def eval_transform(self) -> Any:
        """timm's evaluation transform, whole (float32, normalised)."""
        return import_timm().data.create_transform(**self._kwargs(), is_training=False)

    def eval_uint8_transform(self) -> Any:
        """timm's evaluation transform up to ``ToTensor`` (uint8 ``[C, H, W]``: resize and crop)."""
        return import_timm().data.create_transform(**self._kwargs(), is_training=False, use_prefetcher=True)

    def train_transform(self) -> Any:
        """timm's training transform (random resized crop, flip, colour jitter; normalised)."""
        return import_timm().data.create_transform(**self._kwargs(), is_training=True)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, C, H, W]`` → what timm's ``ToTensor`` + ``Normalize`` give, bit for bit (on
        the images' device: IEEE float32 division and subtraction, as on the CPU)."""
        dev = images.device
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=dev).view(1, -1, 1, 1)
        return images.to(torch.float32).div_(255).sub_(mean).div_(std)


def list_folder(root: Path, classes: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Image files under ``root/<class>/`` and their class indices (``classes`` order), found and
    ordered as timm's ``ImageDataset`` finds them."""
    timm = import_timm()
    find = timm.data.readers.reader_image_folder.find_images_and_targets
    class_to_idx = {c: i for i, c in enumerate(classes)}
    samples, _ = find(str(root), types=set(IMAGE_SUFFIXES), class_to_idx=class_to_idx)
    files = [str(f) for f, _ in samples]
    return files, np.asarray([int(t) for _, t in samples], dtype=np.int64)


def class_folders(root: Path) -> list[str]:
    """The class sub-folders of ``root`` in timm's order (natural key)."""
    from timm.utils.misc import natural_key

    import_timm()
    names = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not names:
        raise UserError(f"{root}: no class sub-folders (ImageFolder layout is <dir>/<class>/<img>)")
    return sorted(names, key=natural_key)


class _Decode(torch.utils.data.Dataset[tuple[int, torch.Tensor | None, str]]):
    """Decodes file ``i`` with PIL and a transform; a file PIL cannot read comes back as
    ``(i, None, reason)`` so the main process names it (an exception in a worker would carry a
    traceback)."""

    def __init__(self, files: Sequence[str], transform: Any, mode: str) -> None:
        self.files = files
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as im:
                img = im.convert(self.mode)
            return i, self.transform(img), ""
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for a damaged file
            return i, None, exc.__class__.__name__


def _collate(
    items: list[tuple[int, torch.Tensor | None, str]],
) -> list[tuple[int, torch.Tensor | None, str]]:
    return items


def _loader(
    dataset: _Decode, workers: int, batch: int, sampler: Any = None
) -> torch.utils.data.DataLoader[Any]:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
        multiprocessing_context="fork" if workers > 0 else None,
    )


def _stacked(items: list[tuple[int, torch.Tensor | None, str]], files: Sequence[str]) -> torch.Tensor:
    for i, img, reason in items:
        if img is None:
            raise UserError(f"{files[i]}: not a readable image ({reason})")
    return torch.stack([img for _, img, _ in items if img is not None])


def decode(
    files: Sequence[str], transform: Any, mode: str, workers: int, batch: int = DECODE_BATCH
) -> Iterator[torch.Tensor]:
    """``transform(image)`` of every file, stacked in batches, in file order; an unreadable file
    raises one :class:`UserError` naming it."""
    for items in _loader(_Decode(files, transform, mode), workers, batch):
        yield _stacked(items, files)


def decode_eval(files: Sequence[str], transform: ImageTransform, workers: int) -> Iterator[torch.Tensor]:
    """The eval transform's uint8 images of ``files`` (resize, crop; before ``ToTensor``), in
    batches, in file order."""
    return decode(files, transform.eval_uint8_transform(), transform.image_mode, workers)


def read_images(files: Sequence[str], transform: ImageTransform, workers: int = 0) -> torch.Tensor:
    """``files`` through the whole eval transform, as one normalised tensor (small sets only)."""
    parts = list(decode_eval(files, transform, workers))
    return transform.normalise(torch.cat(parts)) if parts else torch.zeros((0, *transform.input_size))


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices (sorted), balanced over the classes (round robin over a seeded permutation of
    each class's images) and deterministic for a seed; all indices when ``n`` ≥ the count."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    class_pos = np.empty(int(classes.max()) + 1, dtype=np.int64)
    class_pos[classes] = rng.permutation(len(classes))
    rank = np.empty(len(labels), dtype=np.int64)
    for c in classes:
        idx = np.flatnonzero(labels == c)
        rank[rng.permutation(idx)] = np.arange(len(idx))
    key = rank * len(classes) + class_pos[labels]
    return np.sort(np.argsort(key, kind="stable")[:n])


class FolderSplit(ImageSplit):
    """Image files with labels, read through timm's evaluation transform (cached as uint8)."""

    def __init__(
        self,
        files: Sequence[str],
        labels: np.ndarray,
        transform: ImageTransform,
        workers: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        self.files = list(files)
        self._labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.transform = transform
        self.workers = workers
        self.cache_dir = cache_dir if cache_dir is not None else cache_root() / "images"
        self._key: str | None = None

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.transform.input_size

    @property
    def image_bytes(self) -> int:
        c, h, w = self.transform.input_size
        return c * h * w

    def key(self) -> str:
        """What the cached pixels depend on: every file (path, size, mtime) and label, the
        transform, and the versions of timm and PIL that compute it."""
        if self._key is None:
            import PIL

            timm = import_timm()
            h = hashlib.sha256()
            head = {"v": CACHE_VERSION, "t": asdict(self.transform), "timm": timm.__version__}
            h.update(json.dumps({**head, "pil": PIL.__version__}, sort_keys=True).encode())
            for f, y in zip(self.files, self._labels.tolist(), strict=True):
                st = os.stat(f)
                h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0{y}\n".encode())
            self._key = h.hexdigest()[:32]
        return self._key

    def identity(self) -> tuple[torch.Tensor, ...]:
        return (torch.frombuffer(bytearray(self.key().encode()), dtype=torch.uint8), self._labels)

    def _decode_uint8(self) -> Iterator[torch.Tensor]:
        return decode_eval(self.files, self.transform, self.workers)

    def _cache_file(self) -> Path | None:
        """The split's uint8 file, built on first use (one process builds, others wait); None
        when it cannot be written (then every pass decodes)."""
        path = self.cache_dir / f"{self.key()}.u8"
        done = path.with_suffix(".json")
        if done.is_file() and path.is_file() and path.stat().st_size == len(self) * self.image_bytes:
            return path
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            need = len(self) * self.image_bytes + CACHE_MARGIN_BYTES
            if shutil.disk_usage(self.cache_dir).free < need:
                log.warning(
                    "%s: no room for %d MB of decoded images; decoding on every pass",
                    self.cache_dir,
                    need >> 20,
                )
                return None
            with open(path.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not done.is_file():
                    self._write_cache(path, done)
            return path
        except OSError as exc:
            log.warning("%s: image cache not writable (%s); decoding on every pass", self.cache_dir, exc)
            return None

    def _write_cache(self, path: Path, done: Path) -> None:
        from tqdm import tqdm

        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            with (
                open(tmp, "wb") as f,
                tqdm(total=len(self), desc="decoding images", unit="img", delay=2.0, leave=False) as bar,
            ):
                for batch in self._decode_uint8():
                    f.write(batch.contiguous().numpy().tobytes())
                    bar.update(batch.shape[0])
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"images": len(self), "shape": list(self.transform.input_size), "files": self.files[:1]}
        done.write_text(json.dumps(meta))

    def prepare(self) -> None:
        self._cache_file()

    def uint8_batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The eval transform's uint8 images, in batches (from the cache file when there is one)."""
        path = self._cache_file()
        if path is None:
            yield from self._rebatch(self._decode_uint8(), batch_size)
            return
        shape = self.transform.input_size

        def read(f: Any, i: int) -> torch.Tensor:
            out = torch.empty((min(batch_size, len(self) - i), *shape), dtype=torch.uint8)
            view = memoryview(out.numpy().reshape(-1))  # type: ignore[arg-type]
            if os.preadv(f.fileno(), [view], i * self.image_bytes) != len(view):
                raise UserError(f"{path}: truncated image cache (delete it to rebuild)")
            return out

        # the next batch is read in a thread (the read releases the GIL) while this one is used
        with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(read, f, 0)
            for i in range(batch_size, len(self) + batch_size, batch_size):
                batch = ahead.result()
                if i < len(self):
                    ahead = pool.submit(read, f, i)
                yield batch

    @staticmethod
    def _rebatch(parts: Iterator[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
        pending: list[torch.Tensor] = []
        count = 0
        for part in parts:
            pending.append(part)
            count += part.shape[0]
            while count >= batch_size:
                joined = torch.cat(pending)
                yield joined[:batch_size]
                rest = joined[batch_size:]
                pending, count = ([rest] if rest.shape[0] else []), int(rest.shape[0])
        if count:
            yield torch.cat(pending)

    def batches(
        self, batch_size: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised on ``device``: a GPU receives the uint8 pixels (a quarter of the bytes)."""
        start = 0
        for u8 in self.uint8_batches(batch_size):
            n = u8.shape[0]
            pixels = u8 if device is None else u8.to(device, non_blocking=True)
            yield self.transform.normalise(pixels), self._labels[start : start + n]
            start += n

    def head(self, n: int) -> torch.Tensor:
        return read_images(self.files[:n], self.transform)

    def train_batches(
        self, batch_size: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless shuffled batches through timm's training transform (seeded by ``generator``)."""
        t = self.transform
        dataset = _Decode(self.files, t.train_transform(), t.image_mode)
        while True:
            sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
            for items in _loader(dataset, self.workers, batch_size, sampler):
                idx = torch.as_tensor([i for i, _, _ in items])
                yield _stacked(items, self.files), self._labels[idx]
