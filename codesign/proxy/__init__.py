"""Accuracy of quantization configs: the real evaluator and the fast proxy."""

from codesign.proxy._evaluator import FORWARD_KINDS, PROXY_KINDS, Evaluator, ProxyScores, resolve_proxy_kind
from codesign.proxy._sampling import random_config

__all__ = [
    "FORWARD_KINDS",
    "PROXY_KINDS",
    "Evaluator",
    "ProxyScores",
    "random_config",
    "resolve_proxy_kind",
]
