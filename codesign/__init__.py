"""codesign: joint per-layer quantization and accelerator search for Vision Transformers on FPGAs."""

__version__ = "0.1.0"
