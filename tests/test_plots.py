"""The Pareto plots: real top-1 for the re-scored designs, the proxy for every trial, labelled."""

from __future__ import annotations

from pathlib import Path

from codesign.results.plots import TOP1_LABEL, pareto_data, render_pareto, render_pareto_html
from codesign.results.table import ResultRow


def _row(
    trial: int, real: float | None, pareto: bool, feasible: bool = True, baseline: str = ""
) -> ResultRow:
    return ResultRow(
        trial=trial,
        baseline=baseline,
        feasible=feasible,
        fps_ok=feasible,
        resources_ok=True,
        pareto=pareto,
        accuracy_proxy=-0.001 * trial,
        accuracy_real=real,
        top1_ci_low=None if real is None else real - 0.5,
        top1_ci_high=None if real is None else real + 0.5,
        fps=100.0 + 10 * trial,
        latency_ms=1.0,
        gops=1.0,
        resource_use=0.1 * (trial + 1),
        dsp=8,
        lut=1000,
        ff=1000,
        bram36=2.0,
        rows=4,
        cols=4,
        pot_cols=0,
        freq_mhz=100.0,
        precision="W8A8",
    )


ROWS = [
    _row(0, 97.5, pareto=True, baseline="W8A8 fixed"),
    _row(1, 96.0, pareto=True),
    _row(2, None, pareto=False),
    _row(3, None, pareto=False, feasible=False),
    _row(4, 91.25, pareto=False, baseline="W4A8 fixed"),
]


def test_top1_panels_show_only_the_rescored_designs_by_real_accuracy() -> None:
    panels = pareto_data(ROWS, ["accuracy", "fps", "resources"], 30.0, "proxy: KL")
    assert len(panels) == 4
    top1, proxy = panels[:2], panels[2:]
    for panel in top1:
        assert panel.y_label == TOP1_LABEL and "re-scored" in panel.title
        assert {p.trial: p.y for p in panel.points} == {0: 97.5, 1: 96.0, 4: 91.25}
    for panel in proxy:
        assert panel.y_label == "proxy: KL" and "proxy" in panel.title and "not top-1" in panel.title
        assert sorted(p.trial for p in panel.points) == [0, 1, 2, 3, 4]
        assert {p.trial: p.y for p in panel.points}[2] == -0.002


def test_without_rescored_designs_or_accuracy_only_the_proxy_or_hardware_panels() -> None:
    no_real = [_row(i, None, pareto=i < 2) for i in range(3)]
    assert [p.y_label for p in pareto_data(no_real, ["accuracy", "fps"], None, "proxy")] == ["proxy"] * 2
    hw = pareto_data(ROWS, ["fps", "resources"], None)
    assert len(hw) == 1 and TOP1_LABEL not in hw[0].y_label


def test_png_and_html_carry_both_views(tmp_path: Path) -> None:
    panels = pareto_data(ROWS, ["accuracy", "fps", "resources"], 30.0, "proxy: KL")
    assert render_pareto(panels, tmp_path / "p.png", "t").stat().st_size > 10_000
    html = render_pareto_html(panels, tmp_path / "p.html", "t").read_text()
    assert html.count("top-1 of the 3 re-scored designs") >= 2
    assert "accuracy proxy of all 5 trials (not top-1)" in html
    assert "top-1 91.25 % (95 % CI 90.75" in html  # the hover text of the re-scored baseline
