"""Analytic FPGA model of a ViT accelerator: devices, workloads, engines, RTL and calibration."""
