"""Per-layer quantization of timm Vision Transformers (DESIGN.md §3).

Public API: :class:`LayerQuant`, :class:`QuantConfig`, :func:`parse_precision`,
:func:`quantize_model`, :func:`export_int_model`, :func:`load_int_model`, :class:`Calibration`,
:func:`layer_names`, the quantizer registry :data:`QUANTIZERS`.
"""

from codesign.quant._config import (
    ALLOWED_BITS,
    FLOAT_BITS,
    LayerQuant,
    QuantConfig,
    is_matmul_layer,
    parse_precision,
)
from codesign.quant._model import (
    Calibration,
    QuantAttention,
    QuantConv2d,
    QuantLinear,
    QWeight,
    export_int_model,
    layer_names,
    load_int_model,
    quantize_model,
    quantize_weight,
)
from codesign.quant._quantizers import QUANTIZERS, Quantizer, get_quantizer

__all__ = [
    "ALLOWED_BITS",
    "FLOAT_BITS",
    "QUANTIZERS",
    "Calibration",
    "LayerQuant",
    "QWeight",
    "QuantAttention",
    "QuantConfig",
    "QuantConv2d",
    "QuantLinear",
    "Quantizer",
    "export_int_model",
    "get_quantizer",
    "is_matmul_layer",
    "layer_names",
    "load_int_model",
    "parse_precision",
    "quantize_model",
    "quantize_weight",
]
