"""What a design is built for: FPGA devices (``devices/*.yaml``) and ViT workloads (timm names and
architectures → GEMMs and non-linear ops)."""
