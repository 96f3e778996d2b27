"""Resources of each part of a design, from the RTL :mod:`hwmodel.rtl` builds: counted where the
structure fixes them (DSP slices, flip-flops, block RAM), fitted where Yosys decides
(LUTs, from the versioned coefficients)."""
