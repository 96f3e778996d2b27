"""Per-layer quantization of timm Vision Transformers (DESIGN.md §3).

Public API: :class:`LayerQuant`, :class:`QuantConfig`, :func:`parse_precision`,
:func:`quantize_model`, :func:`export_int_model`, :func:`load_int_model`, :class:`Calibration`,
:func:`layer_names` and :func:`is_matmul_layer` (the ViT layer naming of :mod:`hwmodel.target.vit`), the
quantizer registry :data:`QUANTIZERS`, the integer non-linear kernels :data:`INT_OPS` (softmax,
LayerNorm, GELU; :mod:`hwmodel.arch.intops`, which the RTL check shares) and their :class:`IntSpec`;
integer-only inference: :func:`integer_model` / :func:`quantize_integer_model` (an
:class:`IntegerViT` on int64 codes) and its dyadic rescale :class:`Dyadic` (``M·2^−s``).
"""

from codesign.quant._config import (
    ALLOWED_BITS,
    FLOAT_BITS,
    NONLINEAR_MODES,
    LayerQuant,
    NonlinearMode,
    QuantConfig,
    parse_precision,
)
from codesign.quant._dyadic import Dyadic, dyadic_pair
from codesign.quant._integer import IntegerViT, check_integer_config, integer_model, quantize_integer_model
from codesign.quant._model import (
    Calibration,
    IntNonlinear,
    QuantAttention,
    QuantConv2d,
    QuantLinear,
    QWeight,
    export_int_model,
    load_int_model,
    nonlinear_modules,
    nonlinear_points,
    on_cpu,
    quantize_model,
    quantize_weight,
    softmax_point,
)
from codesign.quant._quantizers import QUANTIZERS, Quantizer, get_quantizer
from hwmodel.arch.intops import INT_OPS, KERNELS, VARIANTS, IntOp, IntSpec
from hwmodel.target.vit import is_matmul_layer, layer_names

__all__ = [
    "ALLOWED_BITS",
    "FLOAT_BITS",
    "INT_OPS",
    "KERNELS",
    "NONLINEAR_MODES",
    "QUANTIZERS",
    "VARIANTS",
    "Calibration",
    "Dyadic",
    "IntNonlinear",
    "IntOp",
    "IntSpec",
    "IntegerViT",
    "LayerQuant",
    "NonlinearMode",
    "QWeight",
    "QuantAttention",
    "QuantConfig",
    "QuantConv2d",
    "QuantLinear",
    "Quantizer",
    "check_integer_config",
    "dyadic_pair",
    "export_int_model",
    "get_quantizer",
    "integer_model",
    "is_matmul_layer",
    "layer_names",
    "load_int_model",
    "nonlinear_modules",
    "nonlinear_points",
    "on_cpu",
    "parse_precision",
    "quantize_integer_model",
    "quantize_model",
    "quantize_weight",
    "softmax_point",
]
