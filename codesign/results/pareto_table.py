"""The Pareto designs as a fixed-width text table (printed by the search and ``codesign.report``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codesign.results.table import ResultRow


def _f(v: float | None, fmt: str) -> str:
    """``v`` formatted, or ``-`` right-aligned to the same width when missing."""
    return format("-", ">" + fmt.split(".")[0]) if v is None else format(float(v), fmt)


#: Printed under the table: what the accuracy columns are.
LEGEND = (
    "proxy: the study's accuracy proxy, higher is better (linkl, kl: −KL divergence of the logits from\n"
    "the FP32 model's, 0 = no loss); top-1 %: real accuracy on the test split, measured for the Pareto\n"
    "designs and the baselines, with its 95 % (Wilson) interval; '-': not measured (hardware-only search)"
)


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _ci(r: ResultRow) -> str:
    if r.top1_ci_low is None or r.top1_ci_high is None:
        return "-"
    return f"{r.top1_ci_low:.2f}–{r.top1_ci_high:.2f}"


def format_pareto(rows: Sequence[ResultRow]) -> str:
    """One line per design, fastest first."""
    head = (
        f"{'trial':>5} {'proxy':>9} {'top-1 %':>8} {'95 % CI':>13} {'FPS':>9} {'ms':>8} {'res.use':>7} "
        f"{'DSP':>5} {'LUT':>7} "
        f"{'BRAM':>6} {'array R×C(pot)':>15} {'MHz':>5}  precision (per layer × count)"
    )
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda row: -float(row.fps or 0)):
        array = f"{r.rows}×{r.cols}({r.pot_cols})"
        tag = f"  [{r.baseline}]" if r.baseline else ""
        lines.append(
            f"{r.trial:>5} {_f(r.accuracy_proxy, '9.4f')} {_f(r.accuracy_real, '8.2f')} {_ci(r):>13} "
            f"{_f(r.fps, '9.1f')} {_f(r.latency_ms, '8.3f')} {_f(r.resource_use, '7.3f')} "
            f"{_s(r.dsp):>5} {_s(r.lut):>7} {_f(r.bram36, '6.1f')} {array:>15} {_f(r.freq_mhz, '5.0f')}  "
            f"{r.precision}{tag}"
        )
    if not rows:
        lines.append("(no feasible design)")
    lines.append(LEGEND)
    return "\n".join(lines)
