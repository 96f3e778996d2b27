"""Plots of a run, compute-then-render: ``*_data`` functions read the result rows, ``render_*``
draw with matplotlib (PNG); ``pareto_html`` uses Optuna's plotly Pareto plot;
:func:`render_run_plots` draws every PNG of a run (the search and ``codesign.report`` call it).

Figures are drawn on matplotlib's object API (``matplotlib.figure.Figure``), not pyplot: no
backend is chosen and no global figure state is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from codesign.atomic import write_atomic
from codesign.objectives import OBJECTIVES, PROXY_LABELS
from codesign.results.table import ResultRow


@dataclass(frozen=True)
class Point:
    trial: int
    x: float
    y: float
    colour: float
    feasible: bool
    pareto: bool
    baseline: str
    real: float | None


@dataclass(frozen=True)
class Panel:
    x_label: str
    y_label: str
    colour_label: str
    points: tuple[Point, ...]
    x_log: bool = False
    x_line: float | None = None  # the FPS target
    x_line_label: str = ""


def _pick(row: ResultRow, key: str) -> float:
    v = getattr(row, key)
    return float("nan") if v is None else float(v)


def pareto_data(
    rows: Sequence[ResultRow],
    objectives: Sequence[str],
    fps_target: float | None,
    proxy_label: str = OBJECTIVES["accuracy"].label,
) -> list[Panel]:
    """Two views of the trials: accuracy vs FPS (colour: resources) and accuracy vs resources
    (colour: FPS); without an accuracy objective, resources vs FPS."""
    has_acc = "accuracy" in objectives
    views: list[tuple[str, str, str]] = (
        [("fps", "accuracy_proxy", "resource_use"), ("resource_use", "accuracy_proxy", "fps")]
        if has_acc
        else [("fps", "resource_use", "latency_ms")]
    )
    labels = {
        "fps": OBJECTIVES["fps"].label,
        "accuracy_proxy": proxy_label,
        "resource_use": OBJECTIVES["resources"].label,
        "latency_ms": OBJECTIVES["latency_ms"].label,
    }
    panels = []
    for x, y, c in views:
        pts = tuple(
            Point(
                trial=row.trial,
                x=_pick(row, x),
                y=_pick(row, y),
                colour=_pick(row, c),
                feasible=row.feasible,
                pareto=row.pareto,
                baseline=row.baseline,
                real=None if row.accuracy_real is None else float(row.accuracy_real),
            )
            for row in rows
        )
        panels.append(
            Panel(
                x_label=labels[x],
                y_label=labels[y],
                colour_label=labels[c],
                points=pts,
                x_log=x == "fps",
                x_line=fps_target if x == "fps" else None,
                x_line_label=f"target {fps_target:g} FPS" if fps_target and x == "fps" else "",
            )
        )
    return panels


def render_pareto(panels: Sequence[Panel], path: Path, title: str) -> Path:
    fig = Figure(figsize=(6.4 * len(panels), 5.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        infeasible = [p for p in panel.points if not p.feasible]
        feasible = [p for p in panel.points if p.feasible and not p.pareto]
        front = sorted((p for p in panel.points if p.pareto), key=lambda p: p.x)
        if infeasible:
            ax.scatter(
                [p.x for p in infeasible],
                [p.y for p in infeasible],
                marker="x",
                c="0.7",
                s=18,
                label=f"infeasible ({len(infeasible)})",
                zorder=1,
            )
        if feasible:
            ax.scatter(
                [p.x for p in feasible],
                [p.y for p in feasible],
                c="tab:blue",
                s=16,
                alpha=0.45,
                label=f"feasible ({len(feasible)})",
                zorder=2,
            )
        if front:
            sc = ax.scatter(
                [p.x for p in front],
                [p.y for p in front],
                c=[p.colour for p in front],
                cmap="viridis",
                s=60,
                edgecolors="k",
                linewidths=0.8,
                label=f"Pareto front ({len(front)})",
                zorder=3,
            )
            cb = fig.colorbar(sc, ax=ax)
            cb.set_label(panel.colour_label)
        markers = iter(("*", "D", "P", "X", "^", "v", "s"))
        for p in (p for p in panel.points if p.baseline):
            label = p.baseline + ("" if p.feasible else " (infeasible)")
            ax.scatter(
                [p.x],
                [p.y],
                marker=next(markers, "o"),
                s=150,
                c="tab:red" if p.feasible else "none",
                edgecolors="tab:red",
                linewidths=1.2,
                label=f"baseline: {label}",
                zorder=4,
            )
        if panel.x_line:
            ax.axvline(panel.x_line, ls="--", c="tab:orange", lw=1.5, label=panel.x_line_label)
        if panel.x_log:
            ax.set_xscale("log")
        ax.set_xlabel(panel.x_label)
        ax.set_ylabel(panel.y_label)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def hypervolume_data(
    history: Sequence[tuple[int, float]], baseline_hv: float
) -> tuple[list[int], list[float], float]:
    return [n for n, _ in history], [hv for _, hv in history], baseline_hv


def render_hypervolume(data: tuple[list[int], list[float], float], path: Path, title: str) -> Path:
    trials, hvs, base = data
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.subplots()
    ax.step(trials, hvs, where="post", label="search (feasible trials so far)", c="tab:blue")
    ax.axhline(base, ls="--", c="tab:red", label=f"baselines only ({base:.3f})")
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume (normalised objectives, ref 1.1)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    def write(tmp: Path) -> None:
        fig.savefig(tmp, dpi=110, format="png")

    return write_atomic(path, write)


def render_run_plots(
    run_dir: Path,
    rows: Sequence[ResultRow],
    hv_history: Sequence[tuple[int, float]],
    summary: Mapping[str, Any],
) -> list[Path]:
    """``pareto.png`` and ``hypervolume.png`` of a run from its result rows, its hypervolume
    history and its summary (the keys of ``summary.json``)."""
    title = f"{summary['study']}: {summary['model']} on {summary['device']}"
    proxy_label = PROXY_LABELS.get(summary.get("proxy_kind") or "", "proxy")
    panels = pareto_data(rows, summary["objectives"], summary.get("fps_target"), proxy_label)
    history = hypervolume_data(hv_history, float(summary["baseline_hypervolume"]))
    return [
        render_pareto(panels, run_dir / "pareto.png", title),
        render_hypervolume(history, run_dir / "hypervolume.png", title),
    ]


def pareto_html(study: Any, objectives: Sequence[str], path: Path) -> Path:
    """Optuna's interactive Pareto plot (plotly, self-contained HTML); infeasible trials (by the
    constraints each trial recorded) are drawn apart."""
    import optuna.visualization as vis

    names = [OBJECTIVES[o].label for o in objectives]
    if len(objectives) > 3:
        names = names[:3]
    fig = vis.plot_pareto_front(
        study,
        targets=(lambda t: t.values[:3]) if len(objectives) > 3 else None,
        target_names=names,
    )
    return write_atomic(path, lambda tmp: fig.write_html(str(tmp), include_plotlyjs=True, full_html=True))
