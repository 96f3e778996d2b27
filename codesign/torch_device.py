"""Where torch runs: ``torch_device: auto | cpu | cuda | cuda:N`` (study key, ``--torch-device``).

``auto`` is CUDA when torch sees a GPU, else the CPU. Evaluation keeps TF32 off (fake-quantized
logits on CUDA then equal the CPU's to float32 rounding) unless the study sets ``tf32: true``.
Running out of GPU memory becomes one :class:`UserError` line naming the key to lower.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator

import torch

from codesign.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def check_device_spec(spec: str, where: str) -> str:
    """``spec`` when it is one of :data:`DEVICE_CHOICES` (syntax only: no GPU is needed to read a
    study), else one line naming ``where`` and the allowed values."""
    m = _PATTERN.match(spec)
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise UserError(f"{where}: torch_device {spec!r} unknown (allowed: {', '.join(DEVICE_CHOICES)})")
    return spec


def add_torch_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--torch-device`` of a command (overrides the study's ``torch_device``)."""
    parser.add_argument(
        "--torch-device",
        type=lambda text: check_device_spec(text, "--torch-device"),
        help="where torch runs: auto (CUDA when torch sees a GPU), cpu, cuda or cuda:N (overrides the study)",
    )


def resolve_device(spec: str, worker: int = 0) -> torch.device:
    """The torch device of ``spec``; ``worker`` (the index of a search worker) picks the GPU of
    ``auto``/``cuda`` round robin when torch sees several, so each worker takes its own."""
    check_device_spec(spec, "--torch-device")
    if spec == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if spec == "auto" and not available:
        return torch.device("cpu")
    if not available:
        raise UserError(f"torch_device {spec!r}: torch sees no CUDA GPU (use cpu or auto)")
    count = torch.cuda.device_count()
    if ":" in spec:
        index = int(spec.split(":", 1)[1])
        if index >= count:
            raise UserError(f"torch_device {spec!r}: torch sees {count} GPU(s) (cuda:0 … cuda:{count - 1})")
        return torch.device("cuda", index)
    return torch.device("cuda", worker % count)


def configure(device: torch.device, tf32: bool = False) -> None:
    """TF32 matmuls and convolutions on or off (only meaningful on CUDA)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


@contextlib.contextmanager
def gpu_memory_guard(device: torch.device, batch_key: str = "model.batch_size") -> Iterator[None]:
    """Out of GPU memory inside the block → one line naming ``batch_key`` (what to lower)."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise UserError(
            f"out of memory on {device} ({str(exc).splitlines()[0][:80]}); lower {batch_key} in the study"
        ) from exc
