"""The accelerator's design, as values and cycle formulas: the accelerator config, the engine and
its DSP lane modes, tile cycles, banked buffers, the tile controller's schedule, the non-linear
units and the integer kernels they compute (shared with the quantized model)."""
