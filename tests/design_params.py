"""Small designs of the default search space, shared by the export tests: the decoded trial
parameters of an array on the embedded MNIST ViT."""

from __future__ import annotations

from typing import Any

from codesign.space import load_space
from codesign.study import REPO_ROOT

SPACE = load_space(REPO_ROOT / "search_spaces" / "default.yaml")


def design_params(rows: int, cols: int, share: float, packing: int) -> dict[str, Any]:
    """Trial parameters of a ``rows`` × ``cols`` array (``share`` of the columns PoT) at 100 MHz."""
    return {
        "hw.rows": rows,
        "hw.cols": cols,
        "hw.pot_cols_share": share,
        "hw.packing": packing,
        "hw.freq_mhz": 100,
        "hw.tm": 32,
        "hw.tn_folds": 1,
        "hw.tk_folds": 2,
        "hw.nonlinear_lanes": 2,
    }
