"""Analytic FPGA model of a ViT accelerator, in layers that import downwards only.

``base`` (errors, YAML/JSON reading, command-line plumbing) → ``target`` (devices, ViT workloads)
→ ``arch`` (the design: accelerator config, engine, cycles, buffers, controller schedule,
non-linear units and their integer kernels) → ``rtl`` (PyRTL generators, simulation, Verilog,
Yosys) → ``cost`` (resources of each part, from the RTL and the fitted coefficients) → ``model``
(a design evaluated whole, the default design, exported documents read back) → ``calibration``
(the synthesis grids and fits behind the coefficients, vendor netlists); the commands
(``python -m hwmodel.report``, ``validate``, ``bench``, ``calibrate``, ``vendor_ip``) sit on top.
``tests/test_layers.py`` holds the order.
"""
