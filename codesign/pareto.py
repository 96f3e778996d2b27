"""Pareto fronts and hypervolume (own code), in minimisation form.

Callers turn each objective into a cost to minimise (negate maximised ones) and pick a reference
point that every counted point strictly improves on. The hypervolume is the Lebesgue measure of
the region dominated by the front and bounded by the reference point, computed exactly by slicing
along the last objective (HSO): fine for the few hundred points of a study.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated(points: F64) -> npt.NDArray[np.bool_]:
    """Mask of the points no other point dominates (duplicates all stay)."""
    n = len(points)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        others = points[np.arange(n) != i]
        dominated = np.all(others <= points[i], axis=1) & np.any(others < points[i], axis=1)
        mask[i] = not bool(dominated.any())
    return mask


def _hv2(points: F64, ref: F64) -> float:
    order = np.argsort(points[:, 0], kind="stable")
    area, best_y = 0.0, float(ref[1])
    for x, y in points[order]:
        if y < best_y:
            area += (float(ref[0]) - float(x)) * (best_y - float(y))
            best_y = float(y)
    return area


def hypervolume(points: F64 | Sequence[Sequence[float]], ref: F64 | Sequence[float]) -> float:
    """Exact hypervolume of ``points`` (minimised) w.r.t. ``ref``; points not better than
    ``ref`` in every objective contribute nothing."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, len(ref))
    r = np.asarray(ref, dtype=np.float64)
    pts = pts[np.all(pts < r, axis=1)]
    if len(pts) == 0:
        return 0.0
    d = len(r)
    if d == 1:
        return float(r[0] - pts[:, 0].min())
    if d == 2:
        return _hv2(pts, r)
    pts = pts[non_dominated(pts)]
    order = np.argsort(pts[:, -1], kind="stable")
    pts = pts[order]
    volume = 0.0
    for i in range(len(pts)):
        upper = float(pts[i + 1, -1]) if i + 1 < len(pts) else float(r[-1])
        depth = upper - float(pts[i, -1])
        if depth > 0:
            volume += depth * hypervolume(pts[: i + 1, :-1], r[:-1])
    return volume
