"""Pareto front and hypervolume (own code): exact small cases and invariants."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.pareto import dominates, hypervolume, non_dominated

POINTS = st.lists(st.tuples(*[st.floats(0, 1, allow_nan=False, width=32)] * 3), min_size=1, max_size=12)


def test_exact_values() -> None:
    assert hypervolume([[0, 0, 0]], [1, 1, 1]) == 1.0
    assert hypervolume([[0.5, 0, 0], [0, 0.5, 0]], [1, 1, 1]) == 0.75
    assert hypervolume([[1, 2], [2, 1]], [3, 3]) == 3.0
    assert hypervolume([[2, 2]], [1, 1]) == 0.0  # not better than the reference: no volume


def _grid_volume(points: list[tuple[float, ...]], ref: list[float], steps: int = 24) -> float:
    """Brute force on a grid fine enough for points drawn on the same grid."""
    cell = [r / steps for r in ref]
    volume = 0.0
    for idx in itertools.product(range(steps), repeat=len(ref)):
        centre = [(i + 0.5) * c for i, c in zip(idx, cell, strict=True)]
        if any(all(p[d] <= centre[d] for d in range(len(ref))) for p in points):
            volume += float(np.prod(cell))
    return volume


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 11)] * 3), min_size=1, max_size=6))
def test_matches_brute_force_on_a_grid(raw: list[tuple[int, int, int]]) -> None:
    pts = [tuple(v / 12 for v in p) for p in raw]
    assert abs(hypervolume(pts, [1.0, 1.0, 1.0]) - _grid_volume(pts, [1.0, 1.0, 1.0])) < 1e-9


@settings(max_examples=60, deadline=None)
@given(POINTS, st.tuples(*[st.floats(0, 1, allow_nan=False, width=32)] * 3))
def test_adding_a_point_never_lowers_hypervolume(
    pts: list[tuple[float, ...]], extra: tuple[float, ...]
) -> None:
    ref = [1.1, 1.1, 1.1]
    assert hypervolume([*pts, extra], ref) >= hypervolume(pts, ref) - 1e-12


@settings(max_examples=60, deadline=None)
@given(POINTS)
def test_dominated_points_do_not_count_and_front_is_non_dominated(pts: list[tuple[float, ...]]) -> None:
    arr = np.array(pts, dtype=np.float64)
    mask = non_dominated(arr)
    front = arr[mask]
    assert mask.any()
    for a in front:
        assert not any(dominates(b, a) for b in arr)
    ref = [1.1, 1.1, 1.1]
    assert abs(hypervolume(front, ref) - hypervolume(arr, ref)) < 1e-12
