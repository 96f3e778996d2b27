"""DSP slices of the generated engines: a PyRTL model for simulation, a vendor primitive for export.

The fixed-point PEs are DSP slices in one configuration (Xilinx UG479 / UG579 names):

* ``AREG = DREG = ADREG = 1``, pre-adder ``AD = D + A`` (``INMODE = 00100``; DSP48E2
  ``AMULTSEL = "AD"``, DSP48E1 ``USE_DPORT = "TRUE"``): the activations of two tokens are packed
  inside the slice;
* ``BREG = 2``, ``BCASCREG = 1``: ``B1`` is a shift register that loads the next fold's weight down
  the column (``BCOUT → BCIN``, clock enable ``CEB1``) while ``B2`` (clock enable ``CEB2``) holds
  the weight being multiplied — double-buffered stationary weights with no fabric register;
* ``MREG = PREG = 1``; ``P = Z + M`` with ``Z = 0`` at the head of a cascade chain and
  ``Z = PCIN`` (the slice above) inside it: the reduction is the cascade, not fabric adders.

Latency: an activation presented on ``A``/``D`` in cycle e is multiplied in e + 2 (with the ``B2``
of that cycle) and is in ``P`` (added to ``PCIN`` of e + 2) from cycle e + 4.

:class:`ModelSlices` builds that behaviour in PyRTL (used by every simulation).
:class:`PrimitiveSlices` instead leaves each slice as a boundary of the PyRTL *fabric* (its
inputs become fabric outputs, its ``P`` a fabric input) and records a primitive instance;
:func:`embed_primitives` turns those boundaries into wires of one module and instantiates the
``DSP48E1``/``DSP48E2`` primitives in it with their cascades. Yosys maps such an instance to one
DSP cell and nothing else, which is what the calibration counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import pyrtl

from hwmodel.arch.engine import DspSlice

#: ``OPMODE`` of a chain head (Z = 0, Y = M, X = M) and of a chain body (Z = PCIN); DSP48E2 has a
#: 9-bit OPMODE (W mux in bits 8:7, zero here), DSP48E1 a 7-bit one.
OPMODE_HEAD = 0b000_01_01
OPMODE_BODY = 0b001_01_01
INMODE_D_PLUS_A2 = 0b00100


def sext(w: pyrtl.WireVector, width: int) -> pyrtl.WireVector:
    """Sign-extend or truncate ``w`` to ``width`` bits (two's complement wrap)."""
    if len(w) >= width:
        return w[:width]
    return w.sign_extended(width)


@dataclass(frozen=True)
class SliceIn:
    """What the fabric drives into one slice (``b`` only for the top row of a column)."""

    a: pyrtl.WireVector  # token 0 (sign-extended to the A port)
    d: pyrtl.WireVector  # token 1, already shifted into place (sign-extended to the D port)
    b: pyrtl.WireVector | None
    ceb1: pyrtl.WireVector
    ceb2: pyrtl.WireVector


@dataclass
class SliceOut:
    """A built slice: ``p`` (fabric-visible where requested) and its cascade outputs."""

    name: str
    p: pyrtl.WireVector | None = None
    pcout: pyrtl.WireVector | None = None
    bcout: pyrtl.WireVector | None = None


class SliceBuilder(Protocol):
    """Builds one slice of a column: ``above`` is the slice feeding BCIN (and PCIN unless
    ``chain_head``); ``p_to_fabric`` asks for ``P`` in the fabric (chain outputs)."""

    def build(
        self,
        name: str,
        inputs: SliceIn,
        above: SliceOut | None,
        chain_head: bool,
        p_to_fabric: bool,
    ) -> SliceOut: ...


@dataclass
class ModelSlices:
    """PyRTL model of the slice configuration above (bit-true, cycle-true)."""

    dsp: DspSlice

    def build(
        self,
        name: str,
        inputs: SliceIn,
        above: SliceOut | None,
        chain_head: bool,
        p_to_fabric: bool,
    ) -> SliceOut:
        s = self.dsp
        a2 = pyrtl.Register(s.ad_bits)
        dr = pyrtl.Register(s.ad_bits)
        ad = pyrtl.Register(s.ad_bits)
        b1 = pyrtl.Register(s.b_bits)
        b2 = pyrtl.Register(s.b_bits)
        m = pyrtl.Register(2 * s.ad_bits)  # ≥ ad + b bits: holds the signed product exactly
        p = pyrtl.Register(s.p_bits)
        a2.next <<= sext(inputs.a, s.ad_bits)
        dr.next <<= sext(inputs.d, s.ad_bits)
        ad.next <<= (dr + a2)[: s.ad_bits]
        if above is None:
            if inputs.b is None:
                raise ValueError(f"slice {name}: top row needs a B input")
            b_in = sext(inputs.b, s.b_bits)
        else:
            assert above.bcout is not None
            b_in = above.bcout
        b1.next <<= pyrtl.select(inputs.ceb1, b_in, b1)
        b2.next <<= pyrtl.select(inputs.ceb2, b1, b2)
        m.next <<= sext(pyrtl.signed_mult(ad, b2), 2 * s.ad_bits)
        z = pyrtl.Const(0, s.p_bits) if chain_head or above is None else above.pcout
        assert z is not None
        p.next <<= (sext(m, s.p_bits) + z)[: s.p_bits]
        return SliceOut(name=name, p=p, pcout=p, bcout=b1)


@dataclass(frozen=True)
class Instance:
    """One DSP primitive: its parameters and, per port, a fabric signal, a constant or a cascade."""

    name: str
    primitive: str
    params: dict[str, str]
    #: port → fabric wire name (``"w:<name>"``), constant (``"c:<width>:<value>"``) or another
    #: instance's output (``"i:<instance>.<PORT>"``)
    ports: dict[str, str]


@dataclass
class PrimitiveSlices:
    """Leaves every slice as a primitive instance at the boundary of the PyRTL fabric."""

    dsp: DspSlice
    instances: list[Instance] = field(default_factory=list)

    def _to_dsp(self, name: str, port: str, wire: pyrtl.WireVector, width: int) -> str:
        out = pyrtl.Output(width, f"{name}__{port}")
        out <<= sext(wire, width) if len(wire) != 1 else wire
        return f"w:{out.name}"

    def build(
        self,
        name: str,
        inputs: SliceIn,
        above: SliceOut | None,
        chain_head: bool,
        p_to_fabric: bool,
    ) -> SliceOut:
        s = self.dsp
        e2 = s.name == "DSP48E2"
        opmode_bits = 9 if e2 else 7
        head = chain_head or above is None
        ports = {
            "A": self._to_dsp(name, "A", inputs.a, 30),
            "D": self._to_dsp(name, "D", inputs.d, s.ad_bits),
            "CEB1": self._to_dsp(name, "CEB1", inputs.ceb1, 1),
            "CEB2": self._to_dsp(name, "CEB2", inputs.ceb2, 1),
            "OPMODE": f"c:{opmode_bits}:{OPMODE_HEAD if head else OPMODE_BODY}",
            "INMODE": f"c:5:{INMODE_D_PLUS_A2}",
            "ALUMODE": "c:4:0",
            "CARRYINSEL": "c:3:0",
        }
        if above is None:
            if inputs.b is None:
                raise ValueError(f"slice {name}: top row needs a B input")
            ports["B"] = self._to_dsp(name, "B", inputs.b, s.b_bits)
        else:
            ports["BCIN"] = f"i:{above.name}.BCOUT"
            ports["B"] = f"c:{s.b_bits}:0"
        if not head:
            assert above is not None
            ports["PCIN"] = f"i:{above.name}.PCOUT"
        for ce in ("CEA1", "CEA2", "CED", "CEAD", "CEM", "CEP", "CECTRL", "CEINMODE", "CEALUMODE"):
            ports[ce] = "c:1:1"
        for tie in (*_UNUSED_1BIT, "CEC", "CECARRYIN"):
            ports[tie] = "c:1:0"
        ports["C"] = "c:48:0"
        ports["ACIN"] = "c:30:0"
        if head:
            ports["PCIN"] = "c:48:0"
        if above is None:
            ports["BCIN"] = "c:18:0"
        params = {
            "AREG": "1",
            "ACASCREG": "1",
            "DREG": "1",
            "ADREG": "1",
            "BREG": "2",
            "BCASCREG": "1",
            "MREG": "1",
            "PREG": "1",
            "CREG": "0",
            "OPMODEREG": "0",
            "ALUMODEREG": "0",
            "INMODEREG": "0",
            "CARRYINREG": "0",
            "CARRYINSELREG": "0",
            "A_INPUT": '"DIRECT"',
            "B_INPUT": '"DIRECT"' if above is None else '"CASCADE"',
            "USE_MULT": '"MULTIPLY"',
        }
        if e2:
            params.update(
                {"AMULTSEL": '"AD"', "BMULTSEL": '"B"', "PREADDINSEL": '"A"', "USE_SIMD": '"ONE48"'}
            )
        else:
            params["USE_DPORT"] = '"TRUE"'
        p = None
        if p_to_fabric:
            p = pyrtl.Input(s.p_bits, f"{name}__P")
            ports["P"] = f"w:{p.name}"
        self.instances.append(Instance(name, s.name, params, ports))
        return SliceOut(name=name, p=p)


#: One-bit inputs tied to 0: resets (nothing in the slice is reset; zero inputs flush it) and
#: the carry inputs.
_UNUSED_1BIT = (
    "RSTA",
    "RSTB",
    "RSTC",
    "RSTD",
    "RSTM",
    "RSTP",
    "RSTCTRL",
    "RSTALLCARRYIN",
    "RSTALUMODE",
    "RSTINMODE",
    "CARRYIN",
    "CARRYCASCIN",
    "MULTSIGNIN",
)

_PORT_RE = re.compile(r"^\s*(input|output)\s*(\[\d+:0\])?\s*([^;]+);", flags=re.MULTILINE)


def port_decls(verilog: str) -> dict[str, tuple[str, int]]:
    """name → (direction, width) of the ports of the first module in ``verilog``."""
    ports: dict[str, tuple[str, int]] = {}
    first = verilog.split("endmodule", 1)[0]
    for direction, rng, names in _PORT_RE.findall(first):
        width = int(rng[1:].split(":")[0]) + 1 if rng else 1
        for name in names.split(","):
            ports[name.strip()] = (direction, width)
    return ports


#: Output widths of the DSP ports always connected (cascades, and P: Yosys's 7-series flow reads
#: the P port of every DSP48E1 cell).
_CASCADE_WIDTH = {"BCOUT": 18, "PCOUT": 48}
_P_WIDTH = 48


def embed_primitives(fabric_verilog: str, instances: list[Instance]) -> str:
    """One module: the PyRTL fabric with its slice boundaries (``<slice>__<PORT>`` ports) turned
    into internal wires and one ``DSP48E1``/``DSP48E2`` primitive per instance, cascades wired
    slice to slice. (One flat module: Yosys's ABC9 maps the same fabric ~30 % smaller than
    behind a module boundary; the ports are the engine's.)"""
    ports = port_decls(fabric_verilog)
    boundary = {n for n in ports if "__" in n}
    head_end = fabric_verilog.index(";", fabric_verilog.index("module ")) + 1
    head = fabric_verilog[:head_end]
    name = re.match(r"\s*(?://[^\n]*\n\s*)*module\s+(\w+)", head[head.index("module") :])
    assert name is not None
    outer = [n for n in ports if n not in boundary]
    head = head[: head.index("module")] + f"module {name.group(1)}({', '.join(outer)});"
    decl = re.compile(r"^(\s*)(?:input|output)\s*(\[\d+:0\])?\s*(\w+);$")

    def internal(line: str) -> str:
        m = decl.match(line)
        if m is None or m.group(3) not in boundary:
            return line
        return f"{m.group(1)}wire{m.group(2) or ''} {m.group(3)};"

    body = "\n".join(internal(line) for line in fabric_verilog[head_end:].split("\n"))
    lines = []
    for inst in instances:
        for cas, width in _CASCADE_WIDTH.items():
            lines.append(f"    wire [{width - 1}:0] {inst.name}__{cas};")
        if "P" not in inst.ports:
            lines.append(f"    wire [{_P_WIDTH - 1}:0] {inst.name}__Pq;")
    for inst in instances:
        params = ", ".join(f".{k}({v})" for k, v in inst.params.items())
        pins = [".CLK(clk)"]
        for port, src in inst.ports.items():
            kind, _, rest = src.partition(":")
            if kind == "w":
                pins.append(f".{port}({rest})")
            elif kind == "c":
                bits, value = rest.split(":")
                pins.append(f".{port}({bits}'d{value})")
            else:
                other, other_port = rest.split(".")
                pins.append(f".{port}({other}__{other_port})")
        for cas in _CASCADE_WIDTH:
            pins.append(f".{cas}({inst.name}__{cas})")
        if "P" not in inst.ports:
            pins.append(f".P({inst.name}__Pq)")
        lines.append(f"    {inst.primitive} #({params}) {inst.name}({', '.join(pins)});")
    end = body.rindex("endmodule")
    return head + body[:end] + "\n    // DSP slices\n" + "\n".join(lines) + "\n" + body[end:]
