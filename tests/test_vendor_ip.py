"""hwmodel.vendor_ip: primitive counts of Vivado-style functional netlists (snippets written here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwmodel.base.errors import UserError
from hwmodel.calibration.vendor_ip import classify, count_netlist, read_netlist
from hwmodel.vendor_ip import main

# A Vivado-style Verilog netlist: a leaf module instantiated twice, escaped names, attributes with
# a semicolon in their strings, comments, a parameterised primitive, an unknown cell, glbl.
VERILOG = r"""// Tool Version: Vivado v.2099.1 (lin64)
// Design      : toy_dma
// Device      : xc7z020clg400-1
`timescale 1 ps / 1 ps

(* C_INCLUDE_SG = "0" *) (* C_NOTE = "a; b" *)
module toy_dma (clk, d, q);
  input clk;
  input [1:0] d;
  output q;
  wire \<const0> ;
  GND GND (.G(\<const0> ));
  (* C_M_AXI_MM2S_DATA_WIDTH = "64" *)
  toy_leaf \u_a.leaf[0] (.clk(clk), .d(d[0]));
  toy_leaf u_b (.clk(clk), .d(d[1]));
  // LUT3 commented_out (.O(q));
  /* FDRE also_commented (.C(clk)); */
  RAM32M #(.INIT_A(64'h0)) ram (.WCLK(clk));
  RAMB36E1 #(.DOA_REG(0)) bram (.CLKARDCLK(clk));
  RAMB18E1 bram18 (.CLKARDCLK(clk));
  DSP48E1 #(.AREG(1)) mul (.CLK(clk));
  MYSTERY_CELL odd (.I(clk));
  assign q = d[0];
endmodule

module toy_leaf (clk, d);
  input clk;
  input d;
  wire n0;
  (* SOFT_HLUTNM = "soft_lutpair0;x" *)
  LUT2 #(
    .INIT(4'h8))
    \sig_reg[3]_i_1
       (.I0(d), .I1(clk), .O(n0));
  LUT6_2 #(.INIT(64'h1)) pair (.I0(d), .O5(), .O6());
  FDRE #(.INIT(1'b0)) \q_reg[0] (.C(clk), .CE(1'b1), .D(n0), .Q(), .R(1'b0));
  FDSE s_reg (.C(clk), .CE(1'b1), .D(n0), .Q(), .S(1'b0));
  SRL16E srl (.CLK(clk), .D(d));
  CARRY4 c4 (.CI(1'b0));
  MUXF7 mx (.I0(d), .I1(n0), .S(clk), .O());
endmodule

module glbl ();
  reg GSR_int;
  assign (strong1, weak0) GSR = GSR_int;
  initial begin
    GSR_int = 1'b1;
  end
endmodule
"""

# The same circuit as Vivado writes it in VHDL: escaped entity names, labelled instances.
VHDL = r"""-- Tool Version: Vivado v.2099.1 (lin64)
-- Design      : toy_dma
-- Device      : xc7z020clg400-1
library UNISIM;
use UNISIM.VCOMPONENTS.ALL;
entity \toy_leaf__parameterized0\ is
  port ( clk : in STD_LOGIC; d : in STD_LOGIC );
end \toy_leaf__parameterized0\;

architecture STRUCTURE of \toy_leaf__parameterized0\ is
  signal n0 : STD_LOGIC;
  attribute SOFT_HLUTNM : string;
  attribute SOFT_HLUTNM of \sig_reg[3]_i_1\ : label is "soft_lutpair0; port map";
begin
\sig_reg[3]_i_1\: unisim.vcomponents.LUT2
    generic map( INIT => X"8" )
        port map ( I0 => d, I1 => clk, O => n0 );
pair: unisim.vcomponents.LUT6_2
    generic map( INIT => X"0000000000000001" )
        port map ( I0 => d );
\q_reg[0]\: unisim.vcomponents.FDRE
     port map ( C => clk, CE => '1', D => n0, R => '0' );
s_reg: unisim.vcomponents.FDSE
     port map ( C => clk, CE => '1', D => n0, S => '0' );
srl: unisim.vcomponents.SRL16E
     port map ( CLK => clk, D => d );
c4: unisim.vcomponents.CARRY4
     port map ( CI => '0' );
mx: unisim.vcomponents.MUXF7
     port map ( I0 => d, I1 => n0, S => clk );
end STRUCTURE;

library UNISIM;
use UNISIM.VCOMPONENTS.ALL;
entity toy_dma is
  port ( clk : in STD_LOGIC; d : in STD_LOGIC_VECTOR ( 1 downto 0 ); q : out STD_LOGIC );
  attribute C_INCLUDE_SG : integer;
  attribute C_INCLUDE_SG of toy_dma : entity is 0;
end toy_dma;

architecture STRUCTURE of toy_dma is
  signal \<const0>\ : STD_LOGIC;
begin
GND: unisim.vcomponents.GND
     port map ( G => \<const0>\ );
\u_a.leaf[0]\: entity work.\toy_leaf__parameterized0\
     port map ( clk => clk, d => d(0) );
u_b: entity work.\toy_leaf__parameterized0\
     port map ( clk => clk, d => d(1) );
-- lut3_commented: unisim.vcomponents.LUT3 port map ( O => q );
ram: unisim.vcomponents.RAM32M
    generic map( INIT_A => X"0000000000000000" )
        port map ( WCLK => clk );
bram: unisim.vcomponents.RAMB36E1
     port map ( CLKARDCLK => clk );
bram18: unisim.vcomponents.RAMB18E1
     port map ( CLKARDCLK => clk );
mul: unisim.vcomponents.DSP48E1
     port map ( CLK => clk );
odd: MYSTERY_CELL
     port map ( I => clk );
end STRUCTURE;
"""

# per instance of the leaf: LUT2 + LUT6_2 (2 logic LUTs), SRL16E (1 LUT), FDRE + FDSE, CARRY4, MUXF7;
# top: RAM32M (4 LUTs), RAMB36E1 + RAMB18E1 (1.5 tiles), DSP48E1, the unknown cell
EXPECTED = {
    "lut": 2 * 3 + 4,
    "lut_logic": 2 * 2,
    "lut_memory": 2 * 1 + 4,
    "ff": 2 * 2,
    "bram36": 1.5,
    "dsp": 1,
    "carry": 2,
    "muxf": 2,
    "other": {"MYSTERY_CELL": 1},
}


@pytest.fixture(params=[("toy.v", VERILOG), ("toy.vhdl", VHDL)], ids=["verilog", "vhdl"])
def netlist_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    name, text = request.param
    path = tmp_path / name
    path.write_text(text)
    return path


def test_counts_elaborate_the_hierarchy(netlist_file: Path) -> None:
    result = count_netlist(netlist_file)
    assert result["resources"] == EXPECTED
    assert result["design"] == "toy_dma" and result["device"] == "xc7z020clg400-1"
    assert result["config"]["C_INCLUDE_SG"] == "0"
    assert result["encrypted"] is False
    primitives = result["primitives"]
    assert isinstance(primitives, dict)
    assert primitives["LUT2"] == 2 and primitives["FDRE"] == 2 and "LUT3" not in primitives


def test_verilog_and_vhdl_give_the_same_primitives(tmp_path: Path) -> None:
    (tmp_path / "a.v").write_text(VERILOG)
    (tmp_path / "a.vhdl").write_text(VHDL)
    assert count_netlist(tmp_path / "a.v")["primitives"] == count_netlist(tmp_path / "a.vhdl")["primitives"]


def test_tops_and_repeated_instances(tmp_path: Path) -> None:
    path = tmp_path / "t.v"
    path.write_text(VERILOG)
    netlist = read_netlist(path)
    assert sorted(netlist.tops()) == ["glbl", "toy_dma"]
    assert netlist.modules["glbl"] == {}  # its reg/assign/initial are not instances
    assert netlist.leaf_cells("toy_leaf")["LUT2"] == 1
    assert netlist.leaf_cells()["LUT2"] == 2


def test_lut_sites_of_memory_primitives() -> None:
    """UG474 (v1.9) Table 1: LUTs per distributed-RAM primitive; shift registers one LUT."""
    sites = {"RAM32X1S": 1, "RAM32X1D": 2, "RAM32M": 4, "RAM64X1D": 2, "RAM64M": 4, "RAM128X1D": 4}
    for cell, luts in sites.items():
        res = classify({cell: 3})
        assert (res.lut, res.lut_memory, res.lut_logic) == (3 * luts, 3 * luts, 0), cell
    assert classify({"SRLC32E": 5, "SRL16E": 2}).lut == 7
    assert classify({"FIFO36E2": 1, "FIFO18E1": 1, "RAMB18E2": 2}).bram36 == 2.5
    assert classify({"LDCE": 1, "FDCE": 2, "FDPE": 1}).ff == 4
    assert classify({"GND": 3, "VCC": 1, "BUFG": 1}).other == {"BUFG": 1}


def test_encrypted_parts_are_flagged(tmp_path: Path) -> None:
    path = tmp_path / "enc.v"
    text = VERILOG.replace("MYSTERY_CELL", "toy_fifo_generator")
    path.write_text(text + "`pragma protect begin_protected\n`pragma protect end_protected\n")
    result = count_netlist(path)
    assert result["encrypted"] is True
    res = result["resources"]
    assert isinstance(res, dict) and res["other"] == {"toy_fifo_generator": 1}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.v").write_text(VERILOG)
    (tmp_path / "b.vhdl").write_text(VHDL)
    assert main([str(tmp_path / "a.v"), str(tmp_path / "b.vhdl")]) == 0
    out = capsys.readouterr().out
    assert "LUT 10 (logic 4, memory 6)  FF 4  BRAM36 1.5  DSP 1" in out
    assert "total: LUT 20  FF 8  BRAM36 3  DSP 2" in out
    assert main(["--json", str(tmp_path / "a.v")]) == 0
    assert json.loads(capsys.readouterr().out)[0]["resources"] == EXPECTED


def test_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty.v").write_text("// nothing\n")
    with pytest.raises(UserError, match="no module"):
        read_netlist(tmp_path / "empty.v")
    with pytest.raises(UserError, match=r"missing\.v"):
        read_netlist(tmp_path / "missing.v")
