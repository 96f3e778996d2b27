"""Plots of a run, compute-then-render: ``*_data`` functions read the result rows, ``render_*``
draw them, with matplotlib (PNG) or plotly (the same panels as interactive, self-contained HTML);
:func:`render_run_plots` draws every plot of a run (the search and ``codesign.report`` call it).

Accuracy is shown twice: the designs the search re-scored with the real evaluator (the Pareto
designs and the baselines) by their top-1 accuracy, and every trial by the accuracy proxy the
search optimised, each panel labelled with which one it shows.

Figures are drawn on matplotlib's object API (``matplotlib.figure.Figure``), not pyplot: no
backend is chosen and no global figure state is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codesign.atomic import write_atomic
from codesign.objectives import OBJECTIVES, PROXY_LABELS
from codesign.results.table import ResultRow

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn (a finished re-run draws none)
    from matplotlib.figure import Figure


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
    #: the 95 % interval of ``real``
    real_ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class Panel:
    title: str
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


#: The y value of the real-accuracy panels (the re-scored designs only).
TOP1 = "accuracy_real"
TOP1_LABEL = "top-1 accuracy [%] (real evaluator)"


def pareto_data(
    rows: Sequence[ResultRow],
    objectives: Sequence[str],
    fps_target: float | None,
    proxy_label: str = OBJECTIVES["accuracy"].label,
) -> list[Panel]:
    """Views of the trials: accuracy vs FPS (colour: resources) and accuracy vs resources (colour:
    FPS), first by real top-1 for the re-scored designs (when the run has any), then by the proxy
    for every trial; without an accuracy objective, resources vs FPS."""
    has_acc = "accuracy" in objectives
    rescored = [row for row in rows if row.accuracy_real is not None]
    views: list[tuple[str, str, str]] = []
    if has_acc and rescored:
        views += [("fps", TOP1, "resource_use"), ("resource_use", TOP1, "fps")]
    if has_acc:
        views += [("fps", "accuracy_proxy", "resource_use"), ("resource_use", "accuracy_proxy", "fps")]
    else:
        views += [("fps", "resource_use", "latency_ms")]
    labels = {
        "fps": OBJECTIVES["fps"].label,
        TOP1: TOP1_LABEL,
        "accuracy_proxy": proxy_label,
        "resource_use": OBJECTIVES["resources"].label,
        "latency_ms": OBJECTIVES["latency_ms"].label,
    }
    panels = []
    for x, y, c in views:
        shown = rescored if y == TOP1 else rows
        if y == TOP1:
            title = f"top-1 of the {len(rescored)} re-scored designs (Pareto + baselines)"
        elif has_acc:
            title = f"accuracy proxy of all {len(rows)} trials (not top-1)"
        else:
            title = f"all {len(rows)} trials"
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
                real_ci=None
                if row.top1_ci_low is None or row.top1_ci_high is None
                else (float(row.top1_ci_low), float(row.top1_ci_high)),
            )
            for row in shown
        )
        panels.append(
            Panel(
                title=title,
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


@dataclass(frozen=True)
class Group:
    """The points of a panel drawn alike (a legend entry)."""

    label: str
    points: tuple[Point, ...]
    kind: str  # "infeasible" | "feasible" | "front" | "baseline"


def panel_groups(panel: Panel) -> list[Group]:
    """Infeasible trials, feasible ones, the Pareto front (sorted by x) and each baseline."""
    infeasible = tuple(p for p in panel.points if not p.feasible)
    feasible = tuple(p for p in panel.points if p.feasible and not p.pareto)
    front = tuple(sorted((p for p in panel.points if p.pareto), key=lambda p: p.x))
    groups = [
        Group(f"infeasible ({len(infeasible)})", infeasible, "infeasible"),
        Group(f"feasible ({len(feasible)})", feasible, "feasible"),
        Group(f"Pareto front ({len(front)})", front, "front"),
    ]
    for p in panel.points:
        if p.baseline:
            label = "baseline: " + p.baseline + ("" if p.feasible else " (infeasible)")
            groups.append(Group(label, (p,), "baseline"))
    return [g for g in groups if g.points]


def _grid(n: int) -> tuple[int, int]:
    return (n + 1) // 2 if n > 1 else 1, min(n, 2)


def render_pareto(panels: Sequence[Panel], path: Path, title: str) -> Path:
    nrows, ncols = _grid(len(panels))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * ncols, 5.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        markers = iter(("*", "D", "P", "X", "^", "v", "s"))
        for g in panel_groups(panel):
            xs, ys = [p.x for p in g.points], [p.y for p in g.points]
            if g.kind == "infeasible":
                ax.scatter(xs, ys, marker="x", c="0.7", s=18, label=g.label, zorder=1)
            elif g.kind == "feasible":
                ax.scatter(xs, ys, c="tab:blue", s=16, alpha=0.45, label=g.label, zorder=2)
            elif g.kind == "front":
                sc = ax.scatter(
                    xs,
                    ys,
                    c=[p.colour for p in g.points],
                    cmap="viridis",
                    s=60,
                    edgecolors="k",
                    linewidths=0.8,
                    label=g.label,
                    zorder=3,
                )
                fig.colorbar(sc, ax=ax).set_label(panel.colour_label)
            else:
                feasible = g.points[0].feasible
                ax.scatter(
                    xs,
                    ys,
                    marker=next(markers, "o"),
                    s=150,
                    c="tab:red" if feasible else "none",
                    edgecolors="tab:red",
                    linewidths=1.2,
                    label=g.label,
                    zorder=4,
                )
        if panel.x_line:
            ax.axvline(panel.x_line, ls="--", c="tab:orange", lw=1.5, label=panel.x_line_label)
        if panel.x_log:
            ax.set_xscale("log")
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.x_label)
        ax.set_ylabel(panel.y_label)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="best")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _hover(p: Point, panel: Panel) -> str:
    real = "" if p.real is None else f"<br>top-1 {p.real:.2f} %"
    if p.real_ci is not None:
        real += f" (95 % CI {p.real_ci[0]:.2f}–{p.real_ci[1]:.2f})"
    tag = f"<br>baseline: {p.baseline}" if p.baseline else ""
    return (
        f"trial {p.trial}{tag}<br>{panel.x_label}: {p.x:.4g}<br>{panel.y_label}: {p.y:.4g}{real}"
        f"<br>{panel.colour_label}: {p.colour:.4g}<br>{'feasible' if p.feasible else 'infeasible'}"
    )


def render_pareto_html(panels: Sequence[Panel], path: Path, title: str) -> Path:
    """The panels of :func:`render_pareto` as one interactive plotly page (self-contained HTML)."""
    from plotly.subplots import make_subplots

    nrows, ncols = _grid(len(panels))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[p.title for p in panels])
    style = {
        "infeasible": {"symbol": "x", "color": "lightgrey", "size": 6},
        "feasible": {"color": "steelblue", "size": 6, "opacity": 0.5},
        "front": {"color": "black", "size": 11, "symbol": "circle-open", "line": {"width": 2}},
        "baseline": {"color": "crimson", "size": 13, "symbol": "star"},
    }
    for i, panel in enumerate(panels):
        row, col = i // ncols + 1, i % ncols + 1
        for g in panel_groups(panel):
            fig.add_scatter(
                x=[p.x for p in g.points],
                y=[p.y for p in g.points],
                mode="markers",
                name=g.label,
                legendgroup=g.label,
                showlegend=i == 0 or g.kind == "baseline",
                marker=style[g.kind],
                hovertext=[_hover(p, panel) for p in g.points],
                hoverinfo="text",
                row=row,
                col=col,
            )
        fig.update_xaxes(title_text=panel.x_label, type="log" if panel.x_log else "linear", row=row, col=col)
        fig.update_yaxes(title_text=panel.y_label, row=row, col=col)
        if panel.x_line:
            fig.add_vline(x=panel.x_line, line_dash="dash", line_color="orange", row=row, col=col)
    fig.update_layout(title_text=title, height=480 * nrows, width=720 * ncols)
    return write_atomic(path, lambda tmp: fig.write_html(str(tmp), include_plotlyjs=True, full_html=True))


def hypervolume_data(
    history: Sequence[tuple[int, float]], baseline_hv: float
) -> tuple[list[int], list[float], float]:
    return [n for n, _ in history], [hv for _, hv in history], baseline_hv


def render_hypervolume(data: tuple[list[int], list[float], float], path: Path, title: str) -> Path:
    trials, hvs, base = data
    from matplotlib.figure import Figure

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
    """``pareto.png``, ``pareto.html`` and ``hypervolume.png`` of a run from its result rows, its
    hypervolume history and its summary (the keys of ``summary.json``)."""
    title = f"{summary['study']}: {summary['model']} on {summary['device']}"
    proxy_label = PROXY_LABELS.get(summary.get("proxy_kind") or "", "proxy")
    panels = pareto_data(rows, summary["objectives"], summary.get("fps_target"), proxy_label)
    history = hypervolume_data(hv_history, float(summary["baseline_hypervolume"]))
    return [
        render_pareto(panels, run_dir / "pareto.png", title),
        render_pareto_html(panels, run_dir / "pareto.html", title),
        render_hypervolume(history, run_dir / "hypervolume.png", title),
    ]
