"""Resources of a Vivado functional netlist, counted as Vivado's utilisation report counts them
(``python -m hwmodel.vendor_ip NETLIST...``).

Reads a netlist that Vivado wrote of a synthesised IP (``write_verilog -mode funcsim`` or
``write_vhdl -mode funcsim``: the ``*_sim_netlist.v`` / ``*_sim_netlist.vhdl`` next to an IP's
``.xci``), elaborates its module hierarchy from the top (a module instantiated twice counts
twice) and counts the Xilinx primitives it instantiates, grouped as Vivado's utilisation report
groups them:

- LUTs: ``LUT1``..``LUT6`` and ``LUT6_2`` one LUT each (logic); shift registers ``SRL16E``,
  ``SRLC16E``, ``SRLC32E`` one LUT each; distributed RAM by the LUTs each primitive occupies,
  from UG474 (v1.9) Table 1 "Distributed RAM Configuration": ``RAM32X1S`` 1, ``RAM32X1D`` 2,
  ``RAM32M`` 4, ``RAM64X1S`` 1, ``RAM64X1D`` 2, ``RAM64M`` 4, ``RAM128X1S`` 2, ``RAM128X1D`` 4,
  ``RAM256X1S`` 4. LUT combining (two small LUTs that Vivado later packs into one LUT6 site) is
  not modelled: this is the count of LUT primitives, as Yosys's ``stat`` counts LUT cells.
- flip-flops: ``FDRE``, ``FDSE``, ``FDCE``, ``FDPE``; latches ``LDCE``, ``LDPE`` (Vivado's
  "Slice Registers" counts both).
- block RAM in 36 Kb tiles: ``RAMB36E1``/``RAMB36E2``/``FIFO36E1``/``FIFO36E2`` 1,
  ``RAMB18E1``/``RAMB18E2``/``FIFO18E1``/``FIFO18E2`` 0.5.
- DSP slices: ``DSP48E1``, ``DSP48E2``.
- informational: ``CARRY4``/``CARRY8`` and ``MUXF7``/``MUXF8``/``MUXF9`` (no LUT of their own).

``GND`` and ``VCC`` are constants and not counted; any other leaf cell is listed under
``other`` rather than dropped. The header (``Tool Version``, ``Design``, ``Device``) and the IP's
``C_*`` configuration attributes are read from the file and printed with the counts, so a count
can be cited with the configuration it belongs to.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hwmodel.base.errors import UserError

#: LUT sites per primitive: logic LUTs and shift registers.
LUT_LOGIC: dict[str, int] = {f"LUT{i}": 1 for i in range(1, 7)} | {"LUT6_2": 1}
LUT_SHIFT: dict[str, int] = {"SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
#: LUT sites per distributed-RAM primitive (UG474 v1.9, Table 1 "Distributed RAM Configuration").
LUT_RAM: dict[str, int] = {
    "RAM32X1S": 1,
    "RAM32X1D": 2,
    "RAM32M": 4,
    "RAM64X1S": 1,
    "RAM64X1D": 2,
    "RAM64M": 4,
    "RAM128X1S": 2,
    "RAM128X1D": 4,
    "RAM256X1S": 4,
}
FLIP_FLOPS = frozenset({"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"})
#: 36 Kb block-RAM tiles per primitive.
BRAM36: dict[str, float] = {
    "RAMB36E1": 1.0,
    "RAMB36E2": 1.0,
    "FIFO36E1": 1.0,
    "FIFO36E2": 1.0,
    "RAMB18E1": 0.5,
    "RAMB18E2": 0.5,
    "FIFO18E1": 0.5,
    "FIFO18E2": 0.5,
}
DSPS = frozenset({"DSP48E1", "DSP48E2"})
CARRIES = frozenset({"CARRY4", "CARRY8"})
MUXES = frozenset({"MUXF7", "MUXF8", "MUXF9"})
CONSTANTS = frozenset({"GND", "VCC"})

_VERILOG_KEYWORDS = frozenset(
    {
        "input",
        "output",
        "inout",
        "wire",
        "reg",
        "assign",
        "parameter",
        "localparam",
        "supply0",
        "supply1",
        "tri",
        "tri0",
        "tri1",
        "wand",
        "wor",
        "integer",
        "real",
        "genvar",
        "defparam",
        "initial",
        "always",
        "specify",
        "function",
        "task",
        "begin",
        "end",
        "generate",
        "endgenerate",
    }
)


@dataclass(frozen=True)
class Netlist:
    """One parsed netlist: per module, the cells it instantiates (primitives and modules)."""

    modules: dict[str, Counter[str]]
    header: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    #: parts of the netlist are IEEE-1735 encrypted (``protect begin_protected``): the modules
    #: they define are not visible and show up as unknown cells under ``other``
    encrypted: bool = False

    def tops(self) -> list[str]:
        """Modules no other module instantiates (a Verilog netlist's ``glbl`` is one, with no cells)."""
        used = {cell for cells in self.modules.values() for cell in cells if cell in self.modules}
        return [m for m in self.modules if m not in used]

    def leaf_cells(self, top: str | None = None) -> Counter[str]:
        """The primitives under ``top`` (every top when None), each module counted per instance."""
        memo: dict[str, Counter[str]] = {}

        def flat(module: str, stack: tuple[str, ...]) -> Counter[str]:
            if module in stack:
                raise UserError(f"module {module} instantiates itself")
            if module not in memo:
                total: Counter[str] = Counter()
                for cell, n in self.modules[module].items():
                    if cell in self.modules:
                        for leaf, k in flat(cell, (*stack, module)).items():
                            total[leaf] += n * k
                    else:
                        total[cell] += n
                memo[module] = total
            return memo[module]

        result: Counter[str] = Counter()
        for t in [top] if top is not None else self.tops():
            result.update(flat(t, ()))
        return result


@dataclass(frozen=True)
class Resources:
    """The resource classes of a set of primitives, as Vivado's utilisation report groups them."""

    lut: int
    lut_logic: int
    lut_memory: int
    ff: int
    bram36: float
    dsp: int
    carry: int
    muxf: int
    other: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "lut": self.lut,
            "lut_logic": self.lut_logic,
            "lut_memory": self.lut_memory,
            "ff": self.ff,
            "bram36": self.bram36,
            "dsp": self.dsp,
            "carry": self.carry,
            "muxf": self.muxf,
            "other": dict(sorted(self.other.items())),
        }


def classify(cells: Mapping[str, int]) -> Resources:
    """Group primitive counts (``{"LUT3": 12, "FDRE": 40, ...}``) into resource classes."""
    logic = memory = ff = dsp = carry = muxf = 0
    bram = 0.0
    other: dict[str, int] = {}
    for cell, n in cells.items():
        if cell in LUT_LOGIC:
            logic += LUT_LOGIC[cell] * n
        elif cell in LUT_SHIFT:
            memory += LUT_SHIFT[cell] * n
        elif cell in LUT_RAM:
            memory += LUT_RAM[cell] * n
        elif cell in FLIP_FLOPS:
            ff += n
        elif cell in BRAM36:
            bram += BRAM36[cell] * n
        elif cell in DSPS:
            dsp += n
        elif cell in CARRIES:
            carry += n
        elif cell in MUXES:
            muxf += n
        elif cell not in CONSTANTS:
            other[cell] = other.get(cell, 0) + n
    return Resources(logic + memory, logic, memory, ff, bram, dsp, carry, muxf, other)


def _header(text: str) -> dict[str, str]:
    """``Tool Version``, ``Design`` and ``Device`` from the comment header Vivado writes."""
    found: dict[str, str] = {}
    for key in ("Tool Version", "Design", "Device"):
        m = re.search(rf"^\s*(?://|--)\s*{key}\s*:\s*(.+?)\s*$", text[:4000], re.M)
        if m:
            found[key] = m.group(1)
    return found


def _config(text: str) -> dict[str, str]:
    """The IP's ``C_*`` generics as Vivado writes them: Verilog attributes ``(* C_X = "v" *)``
    or VHDL ``attribute C_X of U0 : label is v;`` (first occurrence of each)."""
    found: dict[str, str] = {}
    for m in re.finditer(r'\(\*\s*(C_[A-Z0-9_]+)\s*=\s*"([^"]*)"\s*\*\)', text):
        found.setdefault(m.group(1), m.group(2))
    for m in re.finditer(
        r'attribute\s+(C_[A-Z0-9_]+)\s+of\s+\S+\s*:\s*\w+\s+is\s+"?([^";]*)"?\s*;', text, re.I
    ):
        found.setdefault(m.group(1).upper(), m.group(2))
    return found


def _plain(escaped: re.Match[str]) -> str:
    """An escaped identifier (Verilog ``\\name``, VHDL ``\\name\\``) as a plain one: its text
    where that is an identifier (a VHDL entity such as ``\\x__parameterized0\\``), else ``esc_id``."""
    name = escaped.group(1)
    return name if re.fullmatch(r"[A-Za-z_][\w$]*", name) else "esc_id"


def parse_verilog(text: str) -> dict[str, Counter[str]]:
    """Per module of a structural Verilog netlist, the count of each cell type it instantiates."""
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"\\(\S+)", _plain, text)  # escaped identifiers may hold ; ( * /
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.S)
    modules: dict[str, Counter[str]] = {}
    for m in re.finditer(r"\bmodule\s+([A-Za-z_][\w$]*)(.*?)\bendmodule\b", text, re.S):
        cells: Counter[str] = Counter()
        for stmt in m.group(2).split(";"):
            inst = re.match(r"\s*([A-Za-z_][\w$]*)(?:\s*#\s*\(|\s+[A-Za-z_])", stmt)
            if inst and inst.group(1) not in _VERILOG_KEYWORDS and "(" in stmt:
                cells[inst.group(1)] += 1
        modules[m.group(1)] = cells
    return modules


_VHDL_INSTANCE = re.compile(
    r"\b(?:\w+)\s*:\s*(?:entity\s+(?:\w+\.)?(\w+)(?:\s*\(\s*\w+\s*\))?|component\s+(\w+)"
    r"|(?:unisim\.vcomponents\.|unisim\.|work\.)?(\w+))\s+(?:generic|port)\s+map\b",
    re.I,
)


def parse_vhdl(text: str) -> dict[str, Counter[str]]:
    """Per entity of a structural VHDL netlist, the count of each cell type its architecture
    instantiates (entity names lower-cased, primitives upper-cased: VHDL ignores case)."""
    text = re.sub(r'"[^"\n]*"', '""', text)
    text = re.sub(r"\\([^\\\n]*)\\", _plain, text)
    text = re.sub(r"--[^\n]*", " ", text)
    entities = {m.group(1).lower() for m in re.finditer(r"\bentity\s+(\w+)\s+is\b", text, re.I)}
    modules: dict[str, Counter[str]] = {name: Counter() for name in entities}
    arch = re.compile(
        r"\barchitecture\s+(\w+)\s+of\s+(\w+)\s+is\b(.*?)\bend\s+(?:architecture\s+)?\1\s*;", re.I | re.S
    )
    for m in arch.finditer(text):
        cells: Counter[str] = Counter()
        for inst in _VHDL_INSTANCE.finditer(m.group(3)):
            name = next(g for g in inst.groups() if g)
            cells[name.lower() if name.lower() in entities else name.upper()] += 1
        modules[m.group(2).lower()] = cells
    return modules


def read_netlist(path: Path) -> Netlist:
    """Parse a Vivado functional netlist (VHDL if its name ends ``.vhd``/``.vhdl``, else Verilog)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    vhdl = path.suffix.lower() in (".vhd", ".vhdl")
    modules = parse_vhdl(text) if vhdl else parse_verilog(text)
    if not modules:
        raise UserError(f"{path}: no {'entity' if vhdl else 'module'} found")
    return Netlist(modules, _header(text), _config(text), "protect begin_protected" in text)


def count_netlist(path: Path) -> dict[str, object]:
    """The header, configuration, primitive counts and resource classes of one netlist."""
    netlist = read_netlist(path)
    cells = netlist.leaf_cells()
    return {
        "file": str(path),
        **{k.lower().replace(" ", "_"): v for k, v in netlist.header.items()},
        "top": netlist.tops(),
        "encrypted": netlist.encrypted,
        "config": netlist.config,
        "primitives": dict(sorted(cells.items())),
        "resources": classify(cells).as_dict(),
    }
