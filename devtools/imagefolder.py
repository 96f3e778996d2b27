"""A generated ImageNet-layout folder (``train/`` + ``val/``) for the data-path tests: JPEG and PNG,
mixed sizes and aspect ratios, RGB, grayscale and CMYK images, optionally one corrupt file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: (width, height) of the generated images, cycled: landscape, portrait, square, tiny
SIZES = ((64, 40), (30, 52), (48, 48), (17, 23), (90, 33))
MODES = ("RGB", "L", "CMYK", "RGB", "RGB")


def write_image(path: Path, rng: np.random.Generator, size: tuple[int, int], mode: str, label: int) -> None:
    """A noisy image whose mean colour depends on ``label`` (so a model can learn something)."""
    w, h = size
    base = np.array([(37 * label) % 256, (91 * label) % 256, (53 * label) % 256], dtype=np.float64)
    arr = np.clip(base + rng.normal(0, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB").convert(mode)
    if path.suffix == ".jpg":
        img.save(path, quality=90)
    else:
        img.save(path)


def write_imagenet_folder(
    root: Path,
    classes: int,
    train_per_class: int,
    val_per_class: int,
    seed: int = 0,
    corrupt: bool = False,
) -> Path:
    """``root/train/<class>/`` and ``root/val/<class>/`` (ImageNet's class naming ``n0000000k``);
    with ``corrupt``, one truncated JPEG in ``val/`` (returned path: the corrupt file, else root)."""
    rng = np.random.default_rng(seed)
    i = 0
    for part, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / part / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                mode = MODES[i % len(MODES)]
                suffix = ".png" if (i % 3 == 1 and mode != "CMYK") else ".jpg"
                write_image(d / f"{part}_{c}_{k}{suffix}", rng, SIZES[i % len(SIZES)], mode, c)
                i += 1
    if corrupt:
        bad = root / "val" / "n00000000" / "zz_corrupt.jpg"
        good = next((root / "val" / "n00000000").glob("*.jpg")).read_bytes()
        bad.write_bytes(good[: len(good) // 3])
        return bad
    return root
