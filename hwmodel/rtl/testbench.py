"""A self-checking Verilog testbench of an exported engine: one GEMM tile, run under Icarus.

The testbench is the engine's controller and output buffer written out for one tile C[M×N] =
A[M×K]·W[K×N]: it drives the weight, token and control ports in exactly the cycles the PyRTL
harness does (:func:`hwmodel.rtl.harness.tile_events`, so both follow one schedule), answers
every column's read request with the partial sums of its output-buffer model one cycle later and
stores what the column puts out. At the end it compares the whole C tile with the exact integer
result (:func:`hwmodel.rtl.harness.reference_gemm`) and the cycle of the last result with the
analytic model's tile cycles (:func:`hwmodel.arch.cycles.mixed_tile_cycles`), prints ``PASS`` and
finishes, or prints each mismatch and stops with ``$fatal`` (``vvp`` exits 1).

Run it beside the engine (and the DSP primitives' simulation models when the engine has them)::

    iverilog -g2012 -o tb tb_engine.v engine.v dsp_models.v && vvp -n tb

Everything the testbench needs is inside the file (no vector files to find at run time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hwmodel.arch.cycles import mixed_tile_cycles
from hwmodel.arch.engine import EngineConfig
from hwmodel.rtl.dsp import port_decls
from hwmodel.rtl.harness import (
    BoolArray,
    GemmTiling,
    IntArray,
    gemm_tiles,
    pot_columns,
    reference_gemm,
    slot_targets,
    sub_arrays,
    tile_events,
)
from hwmodel.rtl.verilog import dut_declarations


@dataclass(frozen=True)
class TileOperands:
    """The integer operands of the tile the testbench runs.

    ``w``'s PoT columns (``pot_columns(N, N, pot_ratio)``, the last ones of the tile) hold PoT
    codes ``sign << (b−1) | m`` of the engine's PoT width, the others signed integers;
    ``a`` holds signed activation codes. ``source`` says where they come from (for the header).
    """

    a: IntArray
    w: IntArray
    pot_ratio: float
    layer_bits: tuple[int, int]
    source: str

    @property
    def pot_mask(self) -> BoolArray:
        n = self.w.shape[1]
        return pot_columns(n, n, self.pot_ratio)


@dataclass(frozen=True)
class _Column:
    """One column of a sub-array as the testbench serves it: its result slots, where its results
    start in the ``rmap`` table (``slots`` entries per result) and how many it owes."""

    prefix: str  # f (fixed) or p (PoT)
    col: int
    slots: tuple[int, ...]
    base: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.col}"

    @property
    def ptr(self) -> str:
        """The testbench's count of results taken from this column."""
        return f"ptr_{self.name}"

    @property
    def due(self) -> str:
        """The testbench's flag: a result of this column is due this cycle."""
        return f"due_{self.name}"

    @property
    def req(self) -> str:
        return f"{self.prefix}_req{self.col}"

    def port(self, kind: str, slot: int) -> str:
        """The engine's partial-sum input (``ps``) or result output (``out``) of ``slot``."""
        return f"p_{kind}{self.col}" if self.prefix == "p" else f"f_{kind}{self.col}_{slot}"

    def entry(self, j: int) -> str:
        """The ``rmap`` entry (C index or −1) of slot number ``j`` of the current result."""
        return f"rmap[{self.base} + {self.ptr} * {len(self.slots)} + {j}]"


def _literal(value: int, width: int) -> str:
    return f"{width}'d{value & ((1 << width) - 1)}"


def engine_testbench(
    engine: EngineConfig, engine_verilog: str, tile: TileOperands, module_name: str = "codesign_engine"
) -> str:
    """Verilog text of the testbench ``tb_engine`` for ``engine_verilog`` (module ``module_name``)
    running ``tile`` as one tile."""
    a = np.asarray(tile.a, dtype=np.int64)
    w = np.asarray(tile.w, dtype=np.int64)
    m, k = a.shape
    n = w.shape[1]
    wb, ab = tile.layer_bits
    mode = engine.mode_for(wb, ab) if engine.cols_fixed else None
    subs = sub_arrays(engine, mode)
    (one_tile,) = gemm_tiles(m, n, k, GemmTiling(m, n, k), tile.pot_ratio)
    events, folds = tile_events(one_tile, subs, a, w, engine)
    expected = reference_gemm(a, w, tile.pot_mask, engine)
    model_cycles = mixed_tile_cycles(m, n, k, engine, tile.pot_ratio, tile.layer_bits)
    ports = port_decls(engine_verilog)
    if module_name not in re.findall(r"^\s*module\s+(\w+)", engine_verilog, flags=re.MULTILINE):
        raise ValueError(f"no module {module_name} in the engine's Verilog")
    inputs = [p for p, (d, _) in ports.items() if d == "input" and p not in ("clk", "rst")]
    outputs = [p for p, (d, _) in ports.items() if d == "output"]
    result_ports = {p for p in inputs if re.fullmatch(r"[fp]_ps\d+(_\d+)?", p)}
    stim = [p for p in inputs if p not in result_ports]
    defaults = {p: 0 for p in stim}
    if mode is not None and "f_mode" in defaults:
        defaults["f_mode"] = engine.modes.index(mode)
    acc = engine.acc_bits

    # per column: its results in order, each as (slot, C index) pairs; flattened into one table
    columns: list[_Column] = []
    table: list[int] = []
    for sub in subs:
        for c in range(sub.cols):
            slots = sorted(
                int(mt.group(1)) if mt.group(1) else 0
                for p in result_ports
                if (mt := re.fullmatch(rf"{sub.prefix}_ps{c}(?:_(\d+))?", p))
            )
            base = len(table)
            results = list(sub.pending[c])
            for fold, step in results:
                where = dict(slot_targets(sub, fold, step, c))
                table.extend(where[s][0] * n + where[s][1] if s in where else -1 for s in slots)
            columns.append(_Column(sub.prefix, c, tuple(slots), base, len(results)))

    last_event = max(events) if events else 0
    limit = 2 * model_cycles + 64
    L: list[str] = []
    L.append("`timescale 1ns/1ps")
    L.append(f"// Self-checking testbench of {module_name} (engine {engine.name}), generated by codesign.")
    L.append(f"// Tile: C[{m}x{n}] = A[{m}x{k}] * W[{k}x{n}], layer bits W{wb}A{ab},")
    L.append(f"//   PoT ratio {tile.pot_ratio:g}")
    L.append(f"//   ({int(tile.pot_mask.sum())} PoT columns of {n}), {folds} folds.")
    L.append(f"// Operands: {tile.source}.")
    L.append(f"// Expected: exact integer C (wrapped to {acc} bits), {model_cycles} cycles (analytic model).")
    L.append("// Run: iverilog -g2012 -o tb tb_engine.v engine.v [dsp_models.v] && vvp -n tb")
    L.append("module tb_engine;")
    L += [f"  {line}" for line in dut_declarations(ports, inputs, outputs, module_name)]
    L.append("")
    L.append(f"  localparam integer M = {m}, N = {n}, MODEL_CYCLES = {model_cycles};")
    L.append(f"  localparam integer LAST_EVENT = {last_event}, LIMIT = {limit};")
    L.append(f"  reg [{acc - 1}:0] cmem [0:{m * n - 1}];  // the output buffer")
    L.append(f"  reg [{acc - 1}:0] want [0:{m * n - 1}];")
    L.append(f"  integer rmap [0:{max(len(table), 1) - 1}];  // per column and result: C index of each slot")
    for col in columns:
        L.append(f"  integer {col.ptr} = 0;")
        L.append(f"  reg {col.due} = 0;")
    L.append("  integer t, i, errors, last_out, owed;")
    L.append("")
    L.append("  task drive(input integer cycle);")
    L.append("    begin")
    for p, v in defaults.items():
        L.append(f"      {p} = {_literal(v, ports[p][1])};")
    L.append("      case (cycle)")
    for cycle in sorted(events):
        sets = " ".join(f"{p} = {_literal(v, ports[p][1])};" for p, v in sorted(events[cycle].items()))
        L.append(f"        {cycle}: begin {sets} end")
    L.append("        default: ;")
    L.append("      endcase")
    L.append("    end")
    L.append("  endtask")
    L.append("")
    L.append("  initial begin")
    L.append("    for (i = 0; i < M * N; i = i + 1) cmem[i] = 0;")
    for i, value in enumerate(expected.ravel().tolist()):
        L.append(f"    want[{i}] = {_literal(value, acc)};")
    for i, index in enumerate(table):
        L.append(f"    rmap[{i}] = {index};")
    L.append("    errors = 0;")
    L.append("    last_out = -1;")
    L.append("    #1 clk = 1; #1 clk = 0; rst = 0;  // one reset cycle")
    owed_terms = " || ".join(f"{col.ptr} < {col.count}" for col in columns) or "0"
    L.append("    owed = 1;")
    L.append("    for (t = 0; (t <= LAST_EVENT || owed) && t < LIMIT; t = t + 1) begin")
    L.append("      drive(t);")
    for col in columns:  # present the partial sums of the results due this cycle
        L.append(f"      if ({col.due}) begin")
        for j, s in enumerate(col.slots):
            L.append(f"        {col.port('ps', s)} = {col.entry(j)} >= 0 ? cmem[{col.entry(j)}] : {acc}'d0;")
        L.append("      end else begin")
        L += [f"        {col.port('ps', s)} = {acc}'d0;" for s in col.slots]
        L.append("      end")
    L.append("      #1;")
    for col in columns:  # store what the columns put out; take their new read requests
        L.append(f"      if ({col.due}) begin")
        for j, s in enumerate(col.slots):
            L.append(f"        if ({col.entry(j)} >= 0) cmem[{col.entry(j)}] = {col.port('out', s)};")
        L.append(f"        {col.ptr} = {col.ptr} + 1;")
        L.append("        last_out = t;")
        L.append("      end")
        L.append(f"      if ({col.req} && {col.ptr} >= {col.count}) begin")
        L.append(f'        $display("FAIL: column {col.name} asks for a result too many (cycle %0d)", t);')
        L.append("        errors = errors + 1;")
        L.append("      end")
        L.append(f"      {col.due} = {col.req};")
    L.append(f"      owed = {owed_terms};")
    L.append("      clk = 1; #1 clk = 0;")
    L.append("    end")
    L.append("    if (owed) begin")
    L.append('      $display("FAIL: results still owed after %0d cycles", t);')
    L.append("      errors = errors + 1;")
    L.append("    end")
    L.append("    if (last_out + 1 != MODEL_CYCLES) begin")
    L.append('      $display("FAIL: last result in cycle %0d, model: %0d cycles", last_out, MODEL_CYCLES);')
    L.append("      errors = errors + 1;")
    L.append("    end")
    L.append("    for (i = 0; i < M * N; i = i + 1)")
    L.append("      if (cmem[i] !== want[i]) begin")
    L.append("        if (errors < 20)")
    L.append(
        '          $display("FAIL: C[%0d][%0d] = %0d, expected %0d", i / N, i % N, $signed(cmem[i]), '
        "$signed(want[i]));"
    )
    L.append("        errors = errors + 1;")
    L.append("      end")
    L.append("    if (errors == 0) begin")
    L.append(
        f'      $display("PASS: tb_engine {engine.name}: C[%0d x %0d] exact, %0d cycles (model %0d)", '
        "M, N, last_out + 1, MODEL_CYCLES);"
    )
    L.append("      $finish;")
    L.append("    end")
    L.append('    $fatal(1, "tb_engine: %0d errors", errors);')
    L.append("  end")
    L.append("endmodule")
    return "\n".join(L) + "\n"
