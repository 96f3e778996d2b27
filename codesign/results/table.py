"""The result table of a search: typed :class:`ResultRow` lines and their CSV form.

``trials.csv`` holds every COMPLETE trial, ``pareto.csv`` the Pareto designs, ``hypervolume.csv``
the hypervolume after each trial. The search writes them from its :class:`~.front.Outcome`;
``codesign.report`` reads them back as the same rows; the plots and the Pareto table read rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from codesign.atomic import write_text_if_changed
from codesign.errors import UserError
from codesign.results.front import Outcome
from codesign.results.trials import TrialRow
from hwmodel.base.yamlio import read_text_file

OBJECTIVE_PREFIX = "objective."


@dataclass(frozen=True)
class ResultRow:
    """One trial as the result table shows it (one line of ``trials.csv``). Values keep the type
    the trial recorded (a clock chosen from ``[25, 50]`` stays an int), so a table written from a
    search reads the same as before."""

    trial: int
    baseline: str
    feasible: bool
    fps_ok: bool
    resources_ok: bool
    pareto: bool
    accuracy_proxy: float | None
    accuracy_real: float | None
    #: the 95 % Wilson interval of ``accuracy_real`` (its test images: ``summary.json``)
    top1_ci_low: float | None
    top1_ci_high: float | None
    fps: float | None
    latency_ms: float | None
    gops: float | None
    resource_use: float | None
    dsp: int | None
    lut: int | None
    ff: int | None
    bram36: float | None
    rows: int
    cols: int
    pot_cols: int
    freq_mhz: float | None
    precision: str
    #: The trial's objective values by objective name (the ``objective.<name>`` columns).
    objectives: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, r: TrialRow, outcome: Outcome, pareto: bool) -> ResultRow:
        a = r.attrs
        rows, cols, pot = (a.get("array") or [0, 0, 0])[:3]
        ci = outcome.top1_interval(r.number)
        return cls(
            trial=r.number,
            baseline=r.baseline,
            feasible=r.feasible,
            fps_ok=r.fps_ok,
            resources_ok=r.resources_ok,
            pareto=pareto,
            accuracy_proxy=a.get("proxy"),
            accuracy_real=outcome.real_accuracy.get(r.number),
            top1_ci_low=None if ci is None else round(ci[0], 4),
            top1_ci_high=None if ci is None else round(ci[1], 4),
            fps=a.get("fps"),
            latency_ms=a.get("latency_ms"),
            gops=a.get("gops"),
            resource_use=a.get("resource_use"),
            dsp=a.get("dsp"),
            lut=a.get("lut"),
            ff=a.get("ff"),
            bram36=a.get("bram36"),
            rows=rows,
            cols=cols,
            pot_cols=pot,
            freq_mhz=a.get("freq_mhz"),
            precision=a.get("precision", ""),
            objectives=dict(zip(outcome.objectives, r.values, strict=True)),
        )


#: The fixed CSV columns, in order (the ``objective.<name>`` columns follow).
CSV_FIELDS = tuple(f.name for f in fields(ResultRow) if f.name != "objectives")
_BOOLS = frozenset(f.name for f in fields(ResultRow) if f.type == "bool")
_INTS = frozenset(("trial", "dsp", "lut", "ff", "rows", "cols", "pot_cols"))
_TEXT = frozenset(("baseline", "precision"))


def result_rows(outcome: Outcome) -> list[ResultRow]:
    """Every trial of ``outcome`` as a result row, in trial order."""
    front = {r.number for r in outcome.pareto}
    return [ResultRow.of(r, outcome, r.number in front) for r in outcome.rows]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return int(value) if isinstance(value, bool) else value


def write_rows(path: Path, rows: Sequence[ResultRow], objectives: Sequence[str]) -> bool:
    """Write the rows as CSV (unless the file holds them already); whether it wrote."""
    columns = [*CSV_FIELDS, *(OBJECTIVE_PREFIX + o for o in objectives)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        cells = {k: _cell(getattr(row, k)) for k in CSV_FIELDS}
        cells.update({OBJECTIVE_PREFIX + o: _cell(row.objectives.get(o)) for o in objectives})
        writer.writerow(cells)
    return write_text_if_changed(path, buf.getvalue())


def _parse(column: str, text: str) -> Any:
    if column in _TEXT:
        return text
    if column in _BOOLS:
        return text in {"1", "True", "true"}
    if text == "":
        return None
    kind: Callable[[str], Any] = int if column in _INTS else float
    return kind(text)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise UserError(f"{path} not found (is this a run folder of codesign.search?)")
    return list(csv.DictReader(io.StringIO(read_text_file(path, "results table"), newline="")))


def read_rows(path: Path) -> list[ResultRow]:
    """The rows of a ``trials.csv`` / ``pareto.csv`` written by :func:`write_rows`."""
    rows = []
    for line, rec in enumerate(_read_csv(path), start=2):
        try:
            values = {k: _parse(k, rec.get(k) or "") for k in CSV_FIELDS}
            objectives = {
                k.removeprefix(OBJECTIVE_PREFIX): float(v)
                for k, v in rec.items()
                if k is not None and k.startswith(OBJECTIVE_PREFIX) and v not in (None, "")
            }
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: line {line} is not a row codesign.search writes ({exc})") from exc
        rows.append(ResultRow(**values, objectives=objectives))
    return rows


def write_history(path: Path, history: Sequence[tuple[int, float]]) -> bool:
    """Write ``hypervolume.csv`` (unless the file holds this history already); whether it wrote."""
    return write_text_if_changed(path, "trial,hypervolume\n" + "".join(f"{n},{hv}\n" for n, hv in history))


def read_history(path: Path) -> list[tuple[int, float]]:
    """The (trial, hypervolume so far) pairs of a ``hypervolume.csv``."""
    try:
        return [(int(r["trial"]), float(r["hypervolume"])) for r in _read_csv(path)]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a hypervolume table codesign.search writes") from exc


def write_tables(run_dir: Path, outcome: Outcome) -> tuple[list[ResultRow], bool]:
    """``trials.csv``, ``pareto.csv`` and ``hypervolume.csv`` of ``outcome``: its result rows, and
    whether any table changed (files that already hold the same table are not rewritten)."""
    rows = result_rows(outcome)
    changed = [
        write_rows(run_dir / "trials.csv", rows, outcome.objectives),
        write_rows(run_dir / "pareto.csv", [r for r in rows if r.pareto], outcome.objectives),
        write_history(run_dir / "hypervolume.csv", outcome.hv_history),
    ]
    return rows, any(changed)
