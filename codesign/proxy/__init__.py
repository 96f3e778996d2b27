"""Accuracy of quantization configs: the real evaluator and the fast proxy."""

from codesign.proxy._evaluator import (
    ANY_CLASS_KIND,
    FORWARD_KINDS,
    PROXY_KINDS,
    TERM_KINDS,
    Evaluator,
    ProxyScores,
    resolve_proxy_kind,
)
from codesign.proxy._sampling import random_config

__all__ = [
    "ANY_CLASS_KIND",
    "FORWARD_KINDS",
    "PROXY_KINDS",
    "TERM_KINDS",
    "Evaluator",
    "ProxyScores",
    "random_config",
    "resolve_proxy_kind",
]
