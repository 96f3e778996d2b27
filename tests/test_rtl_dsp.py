"""Our DSP48E2 simulation model against Yosys's DSP48E1 model, under Icarus, where the slices agree.

Yosys ships a simulation model of DSP48E1 (share/xilinx/cells_sim.v) but only a black box of
DSP48E2, so the engines' Verilog co-simulates with our model (hwmodel/rtl/dsp48e2_sim.v). For
operands inside 25 × 18 bits the two slices compute the same thing; this drives both with the same
random stimulus in the configurations the engines use (and a few they do not) and compares P and
the cascade outputs every cycle.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hwmodel.rtl.verilog import DSP48E2_MODEL, iverilog_available, yosys_cell_model

pytestmark = pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed")

#: (name, parameters shared by both slices, OPMODE[6:0], INMODE, ALUMODE)
CONFIGS = [
    (
        "engine chain head",
        "AREG(1), DREG(1), ADREG(1), BREG(2), BCASCREG(1), MREG(1), PREG(1)",
        0b0000101,
        0b00100,
        0,
    ),
    (
        "engine chain body",
        "AREG(1), DREG(1), ADREG(1), BREG(2), BCASCREG(1), MREG(1), PREG(1)",
        0b0010101,
        0b00100,
        0,
    ),
    (
        "accumulate P, A only",
        "AREG(2), ACASCREG(1), BREG(1), MREG(1), PREG(1), DREG(0), ADREG(0)",
        0b0100101,
        0b00000,
        0,
    ),
    (
        "D - A, subtract from C",
        "AREG(1), BREG(1), MREG(0), PREG(1), CREG(1), DREG(1), ADREG(0)",
        0b0110101,
        0b01100,
        3,
    ),
]


def _bench(params: str, opmode: int, inmode: int, alumode: int, stimulus: list[tuple[int, ...]]) -> str:
    e2_extra = '.AMULTSEL("AD"), .PREADDINSEL("A"), ' if inmode & 0b00100 else ""
    e1_extra = '.USE_DPORT("TRUE"), ' if inmode & 0b00100 else ""
    common = f"{params}, OPMODEREG(0), ALUMODEREG(0), INMODEREG(0), CARRYINREG(0), CARRYINSELREG(0)"
    lines = [
        "`timescale 1ns/1ps",
        "module tb;",
        "reg clk = 0; reg [29:0] a = 0; reg [17:0] b = 0; reg [47:0] c = 0, pcin = 0; reg [24:0] d = 0;",
        "reg ceb1 = 0, ceb2 = 0, cea1 = 0, cea2 = 0;",
        "wire [47:0] p1, p2; wire [29:0] ac1, ac2; wire [17:0] bc1, bc2;",
        f"DSP48E1 #({e1_extra}.{common.replace(', ', ', .')}) e1(.CLK(clk), .A(a), .B(b), .C(c), .D(d), "
        f".PCIN(pcin), .ACIN(30'd0), .BCIN(18'd0), .OPMODE(7'd{opmode}), .INMODE(5'd{inmode}), "
        f".ALUMODE(4'd{alumode}), .CARRYINSEL(3'd0), .CARRYIN(1'b0), .CEA1(cea1), .CEA2(cea2), "
        ".CEB1(ceb1), .CEB2(ceb2), .CEC(1'b1), .CED(1'b1), .CEAD(1'b1), .CEM(1'b1), .CEP(1'b1), "
        ".CECTRL(1'b1), .CEINMODE(1'b1), .CEALUMODE(1'b1), .CECARRYIN(1'b1), .RSTA(1'b0), .RSTB(1'b0), "
        ".RSTC(1'b0), .RSTD(1'b0), .RSTM(1'b0), .RSTP(1'b0), .RSTCTRL(1'b0), .RSTALLCARRYIN(1'b0), "
        ".RSTALUMODE(1'b0), .RSTINMODE(1'b0), .P(p1), .ACOUT(ac1), .BCOUT(bc1));",
        f"DSP48E2 #({e2_extra}.{common.replace(', ', ', .')}) e2(.CLK(clk), .A(a), .B(b), .C(c), "
        f".D({{{{2{{d[24]}}}}, d}}), .PCIN(pcin), .ACIN(30'd0), .BCIN(18'd0), .OPMODE(9'd{opmode}), "
        f".INMODE(5'd{inmode}), .ALUMODE(4'd{alumode}), .CARRYINSEL(3'd0), .CARRYIN(1'b0), .CEA1(cea1), "
        ".CEA2(cea2), .CEB1(ceb1), .CEB2(ceb2), .CEC(1'b1), .CED(1'b1), .CEAD(1'b1), .CEM(1'b1), "
        ".CEP(1'b1), .CECTRL(1'b1), .CEINMODE(1'b1), .CEALUMODE(1'b1), .CECARRYIN(1'b1), .RSTA(1'b0), "
        ".RSTB(1'b0), .RSTC(1'b0), .RSTD(1'b0), .RSTM(1'b0), .RSTP(1'b0), .RSTCTRL(1'b0), "
        ".RSTALLCARRYIN(1'b0), .RSTALUMODE(1'b0), .RSTINMODE(1'b0), .P(p2), .ACOUT(ac2), .BCOUT(bc2));",
        "initial begin",
    ]
    for av, bv, cv, dv, pv, b1, b2, a1, a2 in stimulus:
        lines.append(
            f"  a = 30'd{av}; b = 18'd{bv}; c = 48'd{cv}; d = 25'd{dv}; pcin = 48'd{pv}; "
            f"ceb1 = {b1}; ceb2 = {b2}; cea1 = {a1}; cea2 = {a2}; #1;"
        )
        lines.append('  $display("%0d %0d %0d %0d %0d %0d", p1, p2, ac1, ac2, bc1, bc2);')
        lines.append("  clk = 1; #1 clk = 0;")
    lines += ["  $finish;", "end", "endmodule"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "params", "opmode", "inmode", "alumode"), CONFIGS, ids=[c[0] for c in CONFIGS]
)
def test_dsp48e2_model_agrees_with_yosys_dsp48e1_model(
    name: str, params: str, opmode: int, inmode: int, alumode: int
) -> None:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)

    def signed(bits: int, width: int) -> int:  # a two's-complement value of `bits` in a `width` port
        return int(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1))) & ((1 << width) - 1)

    stimulus = [
        (
            signed(24, 30),  # A: 24 bits so that D ± A stays inside the DSP48E1's 25-bit pre-adder
            signed(18, 18),
            signed(40, 48),
            signed(24, 25),
            signed(46, 48),
            int(rng.integers(0, 2)),
            int(rng.integers(0, 2)),
            int(rng.integers(0, 2)),
            int(rng.integers(0, 2)),
        )
        for _ in range(200)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "tb.v").write_text(_bench(params, opmode, inmode, alumode, stimulus))
        (d / "e1.v").write_text(yosys_cell_model("DSP48E1"))
        (d / "e2.v").write_text(DSP48E2_MODEL.read_text())
        subprocess.run(["iverilog", "-o", str(d / "sim"), *(str(d / f) for f in ("tb.v", "e1.v", "e2.v"))],
                       check=True, capture_output=True)  # fmt: skip
        out = subprocess.run(["vvp", "-n", str(d / "sim")], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == len(stimulus)
    for cycle, (p1, p2, ac1, ac2, bc1, bc2) in enumerate(rows):
        assert (p1, ac1, bc1) == (p2, ac2, bc2), f"{name}: cycle {cycle}"
    assert len({r[0] for r in rows}) > 50  # the products really vary
