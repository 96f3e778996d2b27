// Behavioural simulation model of the Xilinx DSP48E2 (UltraScale/UltraScale+, UG579), for Icarus
// co-simulation of the engines codesign exports. Yosys ships only a black box of DSP48E2
// (share/xilinx/cells_xtra.v); this model is ours.
//
// Scope (anything else stops the simulation with $fatal):
//   * AREG/BREG 0, 1, 2 with ACASCREG/BCASCREG (cascade taps A1/B1 when the register is 2 deep);
//     A_INPUT/B_INPUT DIRECT or CASCADE; CREG, DREG, ADREG, MREG, PREG 0 or 1; INMODEREG,
//     OPMODEREG, ALUMODEREG, CARRYINREG, CARRYINSELREG 0 or 1;
//   * INMODE[0] A1/A2, INMODE[1] zeroes A, INMODE[2] enables D, INMODE[3] D - A, INMODE[4] B1/B2;
//     PREADDINSEL = "A"; AMULTSEL "A" or "AD"; BMULTSEL = "B"; the pre-adder is 27 bits wide
//     (wraps), the multiplier 27 x 18 signed;
//   * OPMODE X (00 0, 01 M, 10 P, 11 A:B), Y (00 0, 01 M — the full product travels on X, as in
//     Yosys's DSP48E1 model —, 10 all ones, 11 C), Z (000 0, 001 PCIN, 010 P, 011 C, 100 P,
//     101 PCIN>>>17, 110 P>>>17), W (00 0, 01 P, 10 RND, 11 C);
//   * ALUMODE 0000 (Z + W + X + Y + CIN) and 0011 (Z - (W + X + Y + CIN)); CARRYINSEL 000;
//     USE_SIMD = "ONE48"; USE_MULT "MULTIPLY" or "NONE"; no pattern detector, no wide XOR.
// Assumptions, where UG579 leaves room: registers start at 0 (as after GSR); the partial products
// of the multiplier are summed in the model (X carries M, Y adds 0), which is what the ALU adds
// for X = Y = 01; CARRYOUT, MULTSIGNOUT, XOROUT and pattern outputs are not modelled (0).
// tests/test_rtl_dsp.py checks it against Yosys's DSP48E1 model wherever the two slices agree
// (operands inside 25 x 18 bits).
`timescale 1ns/1ps
module DSP48E2 (
    output [29:0] ACOUT,
    output [17:0] BCOUT,
    output CARRYCASCOUT,
    output [3:0] CARRYOUT,
    output MULTSIGNOUT,
    output OVERFLOW,
    output reg signed [47:0] P,
    output PATTERNBDETECT,
    output PATTERNDETECT,
    output [47:0] PCOUT,
    output UNDERFLOW,
    output [7:0] XOROUT,
    input [29:0] A,
    input [29:0] ACIN,
    input [3:0] ALUMODE,
    input [17:0] B,
    input [17:0] BCIN,
    input [47:0] C,
    input CARRYCASCIN,
    input CARRYIN,
    input [2:0] CARRYINSEL,
    input CEA1, input CEA2, input CEAD, input CEALUMODE, input CEB1, input CEB2, input CEC,
    input CECARRYIN, input CECTRL, input CED, input CEINMODE, input CEM, input CEP,
    input CLK,
    input [26:0] D,
    input [4:0] INMODE,
    input MULTSIGNIN,
    input [8:0] OPMODE,
    input [47:0] PCIN,
    input RSTA, input RSTALLCARRYIN, input RSTALUMODE, input RSTB, input RSTC, input RSTCTRL,
    input RSTD, input RSTINMODE, input RSTM, input RSTP
);
    parameter integer ACASCREG = 1;
    parameter integer ADREG = 1;
    parameter integer ALUMODEREG = 1;
    parameter AMULTSEL = "A";
    parameter integer AREG = 1;
    parameter AUTORESET_PATDET = "NO_RESET";
    parameter AUTORESET_PRIORITY = "RESET";
    parameter A_INPUT = "DIRECT";
    parameter integer BCASCREG = 1;
    parameter BMULTSEL = "B";
    parameter integer BREG = 1;
    parameter B_INPUT = "DIRECT";
    parameter integer CARRYINREG = 1;
    parameter integer CARRYINSELREG = 1;
    parameter integer CREG = 1;
    parameter integer DREG = 1;
    parameter integer INMODEREG = 1;
    parameter [3:0] IS_ALUMODE_INVERTED = 4'b0000;
    parameter [0:0] IS_CARRYIN_INVERTED = 1'b0;
    parameter [0:0] IS_CLK_INVERTED = 1'b0;
    parameter [4:0] IS_INMODE_INVERTED = 5'b00000;
    parameter [8:0] IS_OPMODE_INVERTED = 9'b000000000;
    parameter [0:0] IS_RSTALLCARRYIN_INVERTED = 1'b0;
    parameter [0:0] IS_RSTALUMODE_INVERTED = 1'b0;
    parameter [0:0] IS_RSTA_INVERTED = 1'b0;
    parameter [0:0] IS_RSTB_INVERTED = 1'b0;
    parameter [0:0] IS_RSTCTRL_INVERTED = 1'b0;
    parameter [0:0] IS_RSTC_INVERTED = 1'b0;
    parameter [0:0] IS_RSTD_INVERTED = 1'b0;
    parameter [0:0] IS_RSTINMODE_INVERTED = 1'b0;
    parameter [0:0] IS_RSTM_INVERTED = 1'b0;
    parameter [0:0] IS_RSTP_INVERTED = 1'b0;
    parameter [47:0] MASK = 48'h3FFFFFFFFFFF;
    parameter integer MREG = 1;
    parameter integer OPMODEREG = 1;
    parameter [47:0] PATTERN = 48'h000000000000;
    parameter PREADDINSEL = "A";
    parameter integer PREG = 1;
    parameter [47:0] RND = 48'h000000000000;
    parameter SEL_MASK = "MASK";
    parameter SEL_PATTERN = "PATTERN";
    parameter USE_MULT = "MULTIPLY";
    parameter USE_PATTERN_DETECT = "NO_PATDET";
    parameter USE_SIMD = "ONE48";
    parameter USE_WIDEXOR = "FALSE";
    parameter XORSIMD = "XOR24_48_96";

    initial begin
        if (USE_SIMD != "ONE48") $fatal(1, "DSP48E2 model: USE_SIMD %s not modelled", USE_SIMD);
        if (PREADDINSEL != "A") $fatal(1, "DSP48E2 model: PREADDINSEL must be A");
        if (BMULTSEL != "B") $fatal(1, "DSP48E2 model: BMULTSEL must be B");
        if (AMULTSEL != "A" && AMULTSEL != "AD") $fatal(1, "DSP48E2 model: AMULTSEL must be A or AD");
        if (USE_MULT != "MULTIPLY" && USE_MULT != "NONE") $fatal(1, "DSP48E2 model: USE_MULT");
        if (USE_PATTERN_DETECT != "NO_PATDET" || USE_WIDEXOR != "FALSE")
            $fatal(1, "DSP48E2 model: pattern detector / wide XOR not modelled");
        if (IS_ALUMODE_INVERTED != 0 || IS_CARRYIN_INVERTED != 0 || IS_CLK_INVERTED != 0 ||
            IS_INMODE_INVERTED != 0 || IS_OPMODE_INVERTED != 0)
            $fatal(1, "DSP48E2 model: inverted pins not modelled");
        if (AREG > 2 || BREG > 2 || CREG > 1 || DREG > 1 || ADREG > 1 || MREG > 1 || PREG > 1)
            $fatal(1, "DSP48E2 model: register depth out of range");
    end

    // ---- A, B, C, D input registers -------------------------------------------------------
    wire [29:0] a_in = (A_INPUT == "CASCADE") ? ACIN : A;
    wire [17:0] b_in = (B_INPUT == "CASCADE") ? BCIN : B;
    reg [29:0] a1 = 0, a2 = 0;
    reg [17:0] b1 = 0, b2 = 0;
    reg [47:0] c_r = 0;
    reg [26:0] d_r = 0;
    always @(posedge CLK) begin
        if (RSTA) begin a1 <= 0; a2 <= 0; end
        else if (AREG == 2) begin if (CEA1) a1 <= a_in; if (CEA2) a2 <= a1; end
        else if (AREG == 1) begin if (CEA1) a1 <= a_in; if (CEA2) a2 <= a_in; end
        if (RSTB) begin b1 <= 0; b2 <= 0; end
        else if (BREG == 2) begin if (CEB1) b1 <= b_in; if (CEB2) b2 <= b1; end
        else if (BREG == 1) begin if (CEB1) b1 <= b_in; if (CEB2) b2 <= b_in; end
        if (RSTC) c_r <= 0; else if (CEC) c_r <= C;
        if (RSTD) d_r <= 0; else if (CED) d_r <= D;
    end
    wire [29:0] a1_q = (AREG == 0) ? a_in : a1;
    wire [29:0] a2_q = (AREG == 0) ? a_in : a2;
    wire [17:0] b1_q = (BREG == 0) ? b_in : b1;
    wire [17:0] b2_q = (BREG == 0) ? b_in : b2;
    wire [47:0] c_q = (CREG == 0) ? C : c_r;
    wire [26:0] d_q = (DREG == 0) ? D : d_r;
    assign ACOUT = (ACASCREG == 1 && AREG == 2) ? a1_q : a2_q;
    assign BCOUT = (BCASCREG == 1 && BREG == 2) ? b1_q : b2_q;

    // ---- control registers ----------------------------------------------------------------
    reg [4:0] inmode_r = 0;
    reg [8:0] opmode_r = 0;
    reg [3:0] alumode_r = 0;
    reg [2:0] carryinsel_r = 0;
    reg carryin_r = 0;
    always @(posedge CLK) begin
        if (RSTINMODE) inmode_r <= 0; else if (CEINMODE) inmode_r <= INMODE;
        if (RSTCTRL) begin opmode_r <= 0; carryinsel_r <= 0; end
        else if (CECTRL) begin opmode_r <= OPMODE; carryinsel_r <= CARRYINSEL; end
        if (RSTALUMODE) alumode_r <= 0; else if (CEALUMODE) alumode_r <= ALUMODE;
        if (RSTALLCARRYIN) carryin_r <= 0; else if (CECARRYIN) carryin_r <= CARRYIN;
    end
    wire [4:0] inmode = (INMODEREG == 0) ? INMODE : inmode_r;
    wire [8:0] opmode = (OPMODEREG == 0) ? OPMODE : opmode_r;
    wire [3:0] alumode = (ALUMODEREG == 0) ? ALUMODE : alumode_r;
    wire [2:0] carryinsel = (CARRYINSELREG == 0) ? CARRYINSEL : carryinsel_r;
    wire carryin = (CARRYINREG == 0) ? CARRYIN : carryin_r;

    // ---- pre-adder and multiplier ---------------------------------------------------------
    wire signed [26:0] a_sel = inmode[1] ? 27'sd0 : (inmode[0] ? a1_q[26:0] : a2_q[26:0]);
    wire signed [26:0] d_sel = inmode[2] ? d_q : 27'sd0;
    wire signed [26:0] ad_d = inmode[3] ? (d_sel - a_sel) : (d_sel + a_sel);
    reg signed [26:0] ad_r = 0;
    always @(posedge CLK) if (RSTD) ad_r <= 0; else if (CEAD) ad_r <= ad_d;
    wire signed [26:0] ad_q = (ADREG == 0) ? ad_d : ad_r;
    wire signed [26:0] a_mult = (AMULTSEL == "AD") ? ad_q : a_sel;
    wire signed [17:0] b_mult = inmode[4] ? b1_q : b2_q;
    wire signed [44:0] m_d = a_mult * b_mult;
    reg signed [44:0] m_r = 0;
    always @(posedge CLK) if (RSTM) m_r <= 0; else if (CEM) m_r <= m_d;
    wire signed [44:0] m_q = (MREG == 0) ? m_d : m_r;

    // ---- X, Y, Z, W multiplexers and the ALU ----------------------------------------------
    reg signed [47:0] x, y, z, w;
    always @* begin
        case (opmode[1:0])
            2'b00: x = 48'sd0;
            2'b01: x = m_q;
            2'b10: x = P;
            default: x = {a2_q, b2_q};
        endcase
        case (opmode[3:2])
            2'b00: y = 48'sd0;
            2'b01: y = 48'sd0;
            2'b10: y = {48{1'b1}};
            default: y = c_q;
        endcase
        case (opmode[6:4])
            3'b000: z = 48'sd0;
            3'b001: z = PCIN;
            3'b010: z = P;
            3'b011: z = c_q;
            3'b100: z = P;
            3'b101: z = $signed(PCIN) >>> 17;
            3'b110: z = P >>> 17;
            default: z = 48'sd0;
        endcase
        case (opmode[8:7])
            2'b00: w = 48'sd0;
            2'b01: w = P;
            2'b10: w = RND;
            default: w = c_q;
        endcase
    end
    always @* begin
        if (opmode[6:4] == 3'b111) $fatal(1, "DSP48E2 model: OPMODE Z = 111 is reserved");
        if ((opmode[1:0] == 2'b01) != (opmode[3:2] == 2'b01))
            $fatal(1, "DSP48E2 model: X and Y must both select M (OPMODE %b)", opmode);
        if (alumode != 4'b0000 && alumode != 4'b0011)
            $fatal(1, "DSP48E2 model: ALUMODE %b not modelled", alumode);
        if (carryinsel != 3'b000) $fatal(1, "DSP48E2 model: CARRYINSEL %b not modelled", carryinsel);
    end
    wire signed [47:0] sum = w + x + y + carryin;
    wire signed [47:0] p_d = (alumode == 4'b0011) ? z - sum : z + sum;
    initial P = 48'sd0;
    always @(posedge CLK) if (PREG == 1) begin if (RSTP) P <= 0; else if (CEP) P <= p_d; end
    generate if (PREG == 0) begin : p_comb
        always @* P = p_d;
    end endgenerate

    assign PCOUT = P;
    assign CARRYCASCOUT = 1'b0;
    assign CARRYOUT = 4'b0;
    assign MULTSIGNOUT = 1'b0;
    assign OVERFLOW = 1'b0;
    assign UNDERFLOW = 1'b0;
    assign PATTERNDETECT = 1'b0;
    assign PATTERNBDETECT = 1'b0;
    assign XOROUT = 8'b0;
endmodule
