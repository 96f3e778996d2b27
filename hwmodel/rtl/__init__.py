"""PyRTL generators of the compute engines, GEMM simulation harness, Verilog export and synthesis."""
