"""The one place that imports timm: :func:`import_timm`.

timm imports torchvision; the torchvision wheel that pip picks beside torch 2.13.0 (CPU) fails at
import with ``operator torchvision::nms does not exist`` because its C++ ops are missing. Declaring
the missing operator schemas before the first ``import timm`` is enough for everything timm needs
(DESIGN.md §4). Importing this module changes nothing; the first call of :func:`import_timm`
declares them (once per process) and imports timm::

    from hwmodel.target.timm_compat import import_timm

    timm = import_timm()
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch

_TORCHVISION_OPS = (
    "nms",
    "qnms",
    "roi_align",
    "_roi_align_backward",
    "ps_roi_align",
    "_ps_roi_align_backward",
    "roi_pool",
    "_roi_pool_backward",
    "ps_roi_pool",
    "_ps_roi_pool_backward",
    "qroi_align",
    "deform_conv2d",
    "_deform_conv2d_backward",
)


def _declare_missing_torchvision_ops() -> torch.library.Library | None:
    missing = [op for op in _TORCHVISION_OPS if not hasattr(torch.ops.torchvision, op)]
    if not missing:
        return None
    lib = torch.library.Library("torchvision", "FRAGMENT")  # type: ignore[no-untyped-call]
    for op in missing:
        lib.define(f"{op}(Tensor x) -> Tensor")  # type: ignore[no-untyped-call]
    return lib


@functools.cache
def _timm_with_shim() -> tuple[ModuleType, torch.library.Library | None]:
    # The op definitions live as long as their Library object: the cache keeps it.
    shim = _declare_missing_torchvision_ops()
    import timm

    return timm, shim


def import_timm() -> ModuleType:
    """The ``timm`` module, usable beside this torchvision wheel (see the module docstring)."""
    return _timm_with_shim()[0]
