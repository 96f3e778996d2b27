"""Calibration against Yosys and vendor reports: the synthesis grids, the committed tables
(``*_table.csv``) and the fits that write ``coefficients.json``; vendor netlists counted."""
