"""Verilator simulation of a codesign top-level: build the exported Verilog with a C++ testbench
(``hwmodel/rtl/tb/codesign_tb.cpp``) that is the host and the DRAM, run it on a DRAM image, and
the same run in PyRTL (:func:`simulate_top`) to hold it to.

**The top** (Verilog from PyRTL, :func:`hwmodel.rtl.verilog.working_block_verilog` with
``initialize_registers=True``): ``clk``, ``rst`` (held 0: registers start at 0 as in PyRTL), the
layer sequencer's AXI4-Lite slave (``s_awvalid`` … ``s_rdata``, :mod:`hwmodel.rtl.sequencer`)
and one AXI4 master port with both channels (``m_arvalid`` … ``m_rready``, ``m_awvalid`` …
``m_bready``; ``data_bits`` a beat, :data:`TOP_PORTS`). Other ports may exist (inputs held 0,
outputs ignored). A top with one channel only ties the other off (:func:`idle_write_port`).

**The testbench** (one clock a cycle; inputs set, ``eval``, outputs observed, rising edge —
the cycle PyRTL's ``step`` simulates): the *host* writes ``PROG_BASE_LO``, ``PROG_BASE_HI``,
then ``CTRL`` start, one AXI4-Lite command at a time (a write takes ``awvalid`` and ``wvalid``
together, ``bready`` and ``rready`` always high), polls ``STATUS`` until done or error, then
reads ``OPS_DONE``, ``CYCLES_LO`` and ``CYCLES_HI`` and stops (as
:class:`codesign.program.driver.Accelerator` does); the *DRAM* is
:class:`hwmodel.rtl.dram.Dram` on one port, cycle for cycle (latency, the bandwidth cap per
channel from cycle 0, beats in order held until ``rready``, strobed writes, a write response
``latency`` cycles after a burst's last beat or its address, whichever is later; an access
outside the image or write data before its address is a fault). :func:`simulate_top` is the
same host and :class:`~hwmodel.rtl.dram.Dram` around a PyRTL ``FastSimulation`` of the working
block: the two agree on every count of :class:`SimResult` (tests/test_rtl_verilator.py).

**Files**: the image in and out are the DRAM's raw bytes (``image.bin``: byte ``i`` at address
``i``); the result is one JSON object (:class:`SimResult`'s fields; ``sim_seconds`` the C++ loop's
wall time). Executable: ``codesign_tb IMAGE_IN PROGRAM_BASE IMAGE_OUT RESULT_JSON DATA_BITS
LATENCY BYTES_PER_CYCLE(0: no cap) MAX_CYCLES``; exit 0 finished, 2 out of cycles, 3 DRAM fault.

**Build**: ``verilator --cc --exe --build -O3 --x-assign 0 --x-initial 0`` with the model's C++
at ``-O2`` (:data:`VERILATOR_FLAGS`), ``-j`` :data:`BUILD_JOBS`, cached by a hash of the Verilog,
the testbench, the register map, the flags and Verilator's version in :func:`cache_dir`
(``$CODESIGN_VERILATOR_CACHE`` or ``~/.cache/codesign/verilator``; a build goes to a temporary
folder renamed into place, so concurrent runs do not clash). Measured with Verilator 5.006 and
g++ on this machine (2 cores, shared: load 2–12, so ±2x), cold cache: the layer sequencer top of
tests/test_rtl_verilator.py (128-bit beats) builds in 6–12 s and simulates ~2.8 M cycles a second
(a 5,000-op program: 155 k cycles in 0.055 s); its copy engine (sequencer, DMA reader and writer,
interconnect, a buffer) at 64 bits builds in 10–14 s and simulates 1.2–2.8 M cycles a second, at
128 bits (8 elements a cycle) 18 s and ~0.5 M cycles a second. PyRTL's FastSimulation of the
same tops runs 2–7 k cycles a second (its compile included): 400–1000x slower.

**Driver**: :class:`VerilatorDevice` is a :class:`codesign.program.driver.Device` (as
``ReferenceDevice``): a ``CTRL`` start runs the whole program in Verilator on :attr:`mem`
(``Accelerator(files, device=VerilatorDevice(sim, dram_bytes))``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyrtl

from hwmodel.arch.program import (
    ADDR_BITS,
    CTRL_START,
    REGISTERS,
    STATUS_DONE,
    STATUS_ERROR,
    RegisterDevice,
    RunRegisters,
)
from hwmodel.rtl.block import output_port
from hwmodel.rtl.dram import Dram
from hwmodel.rtl.dsp import port_decls
from hwmodel.rtl.sequencer import REG_ADDR_BITS

#: The C++ testbench sources (package data).
TB_DIR = Path(__file__).with_name("tb")
TESTBENCH = TB_DIR / "codesign_tb.cpp"
#: Parallel C++ compile jobs of a build.
BUILD_JOBS = 2
#: Verilator's flags (part of the cache key).
VERILATOR_FLAGS = (
    "--cc",
    "--exe",
    "--build",
    "-O3",
    # Verilator 5.006's gate optimisation (with its substitution) miscompiles the accelerator
    # top: the tiny ViT's program ran with the right cycles but wrong GEMM results at -O1…-O3,
    # bit-exact at -O0, with -fno-gate or with -fno-subst (tests/test_rtl_accelerator.py).
    "-fno-gate",
    "--x-assign",
    "0",
    "--x-initial",
    "0",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "--prefix",
    "Vtop",
    # the C++ compiler's optimisation for the model (Verilator's make defaults to -Os: the
    # copy engine of tests/test_rtl_verilator.py simulates 2.3x faster at -O2, builds 1.6x slower)
    "-MAKEFLAGS",
    "OPT_FAST=-O2 OPT_GLOBAL=-O2",
)


def top_ports(data_bits: int) -> dict[str, tuple[str, int]]:
    """The ports a top must have (name: direction, width)."""
    inputs = {
        "s_awvalid": 1,
        "s_awaddr": REG_ADDR_BITS,
        "s_wvalid": 1,
        "s_wdata": 32,
        "s_bready": 1,
        "s_arvalid": 1,
        "s_araddr": REG_ADDR_BITS,
        "s_rready": 1,
        "m_arready": 1,
        "m_rvalid": 1,
        "m_rdata": data_bits,
        "m_rlast": 1,
        "m_awready": 1,
        "m_wready": 1,
        "m_bvalid": 1,
    }
    outputs = {
        "s_awready": 1,
        "s_wready": 1,
        "s_bvalid": 1,
        "s_arready": 1,
        "s_rvalid": 1,
        "s_rdata": 32,
        "m_arvalid": 1,
        "m_araddr": ADDR_BITS,
        "m_arlen": 8,
        "m_rready": 1,
        "m_awvalid": 1,
        "m_awaddr": ADDR_BITS,
        "m_awlen": 8,
        "m_wvalid": 1,
        "m_wdata": data_bits,
        "m_wstrb": data_bits // 8,
        "m_wlast": 1,
    }
    return {
        **{k: ("input", w) for k, w in inputs.items()},
        **{k: ("output", w) for k, w in outputs.items()},
    }


#: The ports of a 128-bit top (:func:`top_ports`).
TOP_PORTS = top_ports(128)


def check_top(verilog: str, data_bits: int) -> str:
    """The first module's name; ``ValueError`` naming a missing or mis-sized port."""
    ports = port_decls(verilog)
    for name, (direction, width) in top_ports(data_bits).items():
        if ports.get(name) != (direction, width):
            raise ValueError(f"the top's port {name} is {ports.get(name)}, not ({direction!r}, {width})")
    first = next(line for line in verilog.splitlines() if line.lstrip().startswith("module "))
    return first.split()[1].split("(")[0]


def idle_write_port(data_bits: int) -> None:
    """Tie off a top's write channel (a top that only reads): the ``m_aw*`` / ``m_w*`` outputs 0,
    ``m_bready`` 1, the inputs declared and unused."""
    for name in ("m_awready", "m_wready", "m_bvalid"):
        pyrtl.Input(1, name)
    zeros = {
        "m_awvalid": 1,
        "m_awaddr": ADDR_BITS,
        "m_awlen": 8,
        "m_awsize": 3,
        "m_awburst": 2,
        "m_wvalid": 1,
        "m_wdata": data_bits,
        "m_wstrb": data_bits // 8,
        "m_wlast": 1,
    }
    for name, width in zeros.items():
        output_port(name, pyrtl.Const(0, width))
    output_port("m_bready", pyrtl.Const(1, 1))


def verilator_available() -> bool:
    """Verilator and what its ``--build`` runs (make, a C++ compiler) are installed."""
    return all(shutil.which(tool) is not None for tool in ("verilator", "make", "g++"))


def verilator_version() -> str:
    done = subprocess.run(["verilator", "--version"], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def cache_dir() -> Path:
    """Where builds are kept: ``$CODESIGN_VERILATOR_CACHE`` or ``~/.cache/codesign/verilator``."""
    env = os.environ.get("CODESIGN_VERILATOR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "codesign" / "verilator"


def _defines() -> list[str]:
    values = {f"CODESIGN_REG_{name}": offset for name, offset in REGISTERS.items()}
    values |= {
        "CODESIGN_STATUS_DONE": STATUS_DONE,
        "CODESIGN_STATUS_ERROR": STATUS_ERROR,
        "CODESIGN_CTRL_START": CTRL_START,
    }
    return [f"-D{k}={v}" for k, v in sorted(values.items())]


@dataclass(frozen=True)
class Build:
    """A built simulator: its executable, whether it came from the cache, the build's seconds."""

    executable: Path
    cached: bool
    build_seconds: float


def build_verilator(verilog: str, jobs: int = BUILD_JOBS, timeout_s: float = 3600.0) -> Build:
    """Build (or find in the cache) the simulator of ``verilog``'s first module with the
    testbench. A Verilator or compiler failure raises ``RuntimeError`` with its last lines."""
    if not verilator_available():
        raise FileNotFoundError("verilator not found (Debian package `verilator`)")
    top = check_top(verilog, _data_bits(verilog))
    cflags = " ".join(_defines())
    key = hashlib.sha256()
    for part in (verilog, TESTBENCH.read_text(encoding="utf-8"), cflags, " ".join(VERILATOR_FLAGS)):
        key.update(part.encode())
        key.update(b"\0")
    key.update(verilator_version().encode())
    folder = cache_dir() / key.hexdigest()[:24]
    exe = folder / "obj_dir" / "Vtop"
    if exe.is_file():
        return Build(exe, True, 0.0)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    try:
        (work / "top.v").write_text(verilog, encoding="utf-8")
        shutil.copy(TESTBENCH, work / TESTBENCH.name)
        cmd = [
            "verilator",
            *VERILATOR_FLAGS,
            "--top-module",
            top,
            "-j",
            str(jobs),
            "-CFLAGS",
            cflags,
            "top.v",
            TESTBENCH.name,
        ]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s, check=False)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"verilator build failed:\n{tail}")
        try:
            work.rename(folder)
        except OSError:  # another process built it first
            if not (folder / "obj_dir" / "Vtop").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return Build(exe, False, seconds)


def _data_bits(verilog: str) -> int:
    ports = port_decls(verilog)
    if "m_rdata" not in ports:
        raise ValueError("the top has no m_rdata port")
    return ports["m_rdata"][1]


@dataclass(frozen=True)
class SimResult:
    """A run: the last ``STATUS`` read, the ``OPS_DONE`` and ``CYCLES`` registers, the cycles of
    the start write (``CTRL`` taken) and of the ``STATUS`` answer with done or error, the cycles
    simulated in all, whether it ran out of cycles, the DRAM's beats and bursts, and the C++
    loop's seconds (0 for PyRTL)."""

    status: int
    ops_done: int
    cycles_register: int
    start_cycle: int
    done_cycle: int
    cycles: int
    timed_out: bool
    read_beats: int
    write_beats: int
    read_bursts: int
    write_bursts: int
    sim_seconds: float = 0.0

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.sim_seconds if self.sim_seconds > 0 else float("inf")

    def counts(self) -> dict[str, int | bool]:
        """Everything but the wall time (what PyRTL and Verilator must agree on)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sim_seconds"}


@dataclass(frozen=True)
class VerilatorSim:
    """A top's Verilog under Verilator with the DRAM's ``data_bits``, latency and bandwidth cap
    (``None``: one beat a cycle)."""

    verilog: str
    data_bits: int
    latency_cycles: int = 16
    bytes_per_cycle: float | None = None
    jobs: int = BUILD_JOBS

    def __post_init__(self) -> None:
        if self.latency_cycles < 1:
            raise ValueError(f"latency_cycles {self.latency_cycles}: at least 1")
        check_top(self.verilog, self.data_bits)

    def build(self) -> Build:
        return build_verilator(self.verilog, self.jobs)

    def run(
        self,
        image: npt.NDArray[np.uint8],
        program_base: int,
        max_cycles: int = 10**10,
        timeout_s: float = 86400.0,
    ) -> tuple[npt.NDArray[np.uint8], SimResult]:
        """Run the program at ``program_base`` on a copy of ``image``: the image after it and
        the result. A DRAM fault raises ``RuntimeError``."""
        exe = self.build().executable
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            np.ascontiguousarray(image, dtype=np.uint8).tofile(d / "image.bin")
            bpc = repr(float(self.bytes_per_cycle)) if self.bytes_per_cycle is not None else "0"
            args = [str(d / "image.bin"), str(program_base), str(d / "out.bin"), str(d / "result.json")]
            args += [str(self.data_bits), str(self.latency_cycles), bpc, str(max_cycles)]
            done = subprocess.run(
                [str(exe), *args], capture_output=True, text=True, timeout=timeout_s, check=False
            )
            if done.returncode not in (0, 2, 3):
                raise RuntimeError(
                    f"the Verilator testbench failed ({done.returncode}): {done.stderr.strip()}"
                )
            doc = json.loads((d / "result.json").read_text(encoding="utf-8"))
            after = np.fromfile(d / "out.bin", dtype=np.uint8)
        fault = doc.pop("fault")
        if fault is not None:
            raise RuntimeError(f"DRAM fault: {fault}")
        return after, SimResult(**doc)


def simulate_top(
    image: npt.NDArray[np.uint8],
    program_base: int,
    data_bits: int,
    latency_cycles: int = 16,
    bytes_per_cycle: float | None = None,
    max_cycles: int = 1_000_000,
) -> tuple[npt.NDArray[np.uint8], SimResult]:
    """The testbench's run (module docstring) on the top in the PyRTL working block, with
    :class:`~hwmodel.rtl.dram.Dram`: the image after it (a copy) and the result."""
    sim = pyrtl.FastSimulation()
    dram = Dram(image.copy(), data_bits, latency_cycles, bytes_per_cycle)
    reg = REGISTERS
    host: list[tuple[bool, int, int]] = [
        (True, reg["PROG_BASE_LO"], program_base & 0xFFFFFFFF),
        (True, reg["PROG_BASE_HI"], program_base >> 32),
        (True, reg["CTRL"], CTRL_START),
    ]
    lite = {"s_awvalid": 0, "s_awaddr": 0, "s_wvalid": 0, "s_wdata": 0, "s_bready": 1}
    lite |= {"s_arvalid": 0, "s_araddr": 0, "s_rready": 1}
    regs = {name: 0 for name in ("STATUS", "OPS_DONE", "CYCLES_LO", "CYCLES_HI")}
    by_offset = {reg[name]: name for name in regs}
    pending: int | None = None
    finished = False
    start_cycle = done_cycle = -1
    timed_out = True
    cycle = 0
    while cycle < max_cycles:
        inputs = dict(lite)
        if host and pending is None:
            write, offset, value = host[0]
            if write:
                inputs |= {"s_awvalid": 1, "s_awaddr": offset, "s_wvalid": 1, "s_wdata": value}
            else:
                inputs |= {"s_arvalid": 1, "s_araddr": offset}
        inputs |= dram.inputs(cycle)
        sim.step(inputs)
        dram.observe(cycle, sim.inspect)
        stop = False
        if host and pending is None:
            write, offset, value = host[0]
            if write and sim.inspect("s_awready"):
                host.pop(0)
                if offset == reg["CTRL"]:
                    start_cycle = cycle
                    host.append((False, reg["STATUS"], 0))
            elif not write and sim.inspect("s_arready"):
                pending = offset
                host.pop(0)
        elif pending is not None and sim.inspect("s_rvalid"):
            value = sim.inspect("s_rdata")
            if pending in by_offset:
                regs[by_offset[pending]] = value
            if pending == reg["STATUS"]:
                if value & (STATUS_DONE | STATUS_ERROR):
                    host += [(False, reg[n], 0) for n in ("OPS_DONE", "CYCLES_LO", "CYCLES_HI")]
                    finished, done_cycle = True, cycle
                else:
                    host.append((False, reg["STATUS"], 0))
            pending = None
            stop = finished and not host
        cycle += 1
        if stop:
            timed_out = False
            break
    port = dram.ports["m_"]
    result = SimResult(
        status=regs["STATUS"],
        ops_done=regs["OPS_DONE"],
        cycles_register=regs["CYCLES_LO"] | regs["CYCLES_HI"] << 32,
        start_cycle=start_cycle,
        done_cycle=done_cycle,
        cycles=cycle,
        timed_out=timed_out,
        read_beats=port.read_beats,
        write_beats=port.write_beats,
        read_bursts=len(port.bursts_read),
        write_bursts=len(port.writes),
    )
    return dram.image, result


class VerilatorDevice(RegisterDevice):
    """A :class:`codesign.program.driver.Device` whose start runs the program in Verilator: the
    registers as the sequencer's, :attr:`mem` the DRAM image, :attr:`last` the last run's result."""

    def __init__(self, sim: VerilatorSim, dram_bytes: int, max_cycles: int = 10**10) -> None:
        super().__init__(dram_bytes)
        self.sim = sim
        self.max_cycles = max_cycles
        self.last: SimResult | None = None

    def run(self, program_base: int) -> RunRegisters:
        after, result = self.sim.run(self.mem, program_base, self.max_cycles)
        if result.timed_out:
            raise RuntimeError(f"the Verilator run did not finish within {self.max_cycles} cycles")
        self.mem[:] = after
        self.last = result
        return RunRegisters(result.status, result.ops_done, result.cycles_register)
