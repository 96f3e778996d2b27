"""Accuracy of quantization configs: the real evaluator and the fast proxy."""

from codesign.proxy._evaluator import FORWARD_KINDS, PROXY_KINDS, Evaluator, ProxyScores
from codesign.proxy._sampling import DEFAULT_SPACE, SearchSpace, random_config

__all__ = [
    "DEFAULT_SPACE",
    "FORWARD_KINDS",
    "PROXY_KINDS",
    "Evaluator",
    "ProxyScores",
    "SearchSpace",
    "random_config",
]
