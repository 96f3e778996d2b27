"""Typed access to attributes of torch modules (timm models are untyped): a wrong type is a
:class:`~codesign.errors.UserError` naming the module and the attribute."""

from __future__ import annotations

import torch
from torch import nn

from codesign.errors import UserError


def child_module(module: nn.Module, name: str) -> nn.Module:
    sub = getattr(module, name)
    if not isinstance(sub, nn.Module):
        raise UserError(f"{type(module).__name__}.{name}: expected a module")
    return sub


def number_attr(module: nn.Module, name: str) -> float:
    value = getattr(module, name)
    if not isinstance(value, int | float):
        raise UserError(f"{type(module).__name__}.{name}: expected a number")
    return float(value)


def tensor_attr(module: nn.Module, name: str) -> torch.Tensor:
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise UserError(f"{type(module).__name__}.{name}: expected a tensor")
    return value
