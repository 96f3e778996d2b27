"""A design evaluated whole (cycles, FPS, resources, feasibility), the documented default design
and exported design documents (``accelerator.json``) read back."""
