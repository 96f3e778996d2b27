"""Linearized KL proxy: first-order logit changes per quantization point, cached, summed per call.

Each quantization point e (a weight, a layer input, Q/K/P/V of an attention matmul) perturbs the
logits to first order by δz_e = J_e · δe, where δe = Q(e) − e is the (deterministic) quantization
error of that point and J_e the Jacobian of the logits with respect to it. The Jacobians are taken
once, with one backward pass per class on a batch of calibration images (FP32 model); for a layer
y = W·x the contraction with J is done through the layer's output gradient: δz = ⟨∂z/∂y, δW·x⟩ for
the weight and ⟨∂z/∂y, W·δx⟩ for its input. Each δz_e (a [N, C] tensor) is memoised per
(point, bits, PoT ratio, method). A proxy call sums the δz of the config's choices, and returns
−KL(softmax(z) ‖ softmax(z + Σ δz)) averaged over the images: no forward pass, ≈ 1 ms.

With ``nonlinear: int`` the integer softmax, LayerNorm and GELU add one term each: the error
δy = y_int(x) − y_float(x) of the operator's output on the FP32 activations (the kernel variant
the config's ``kernels`` chooses for the kind, :func:`nonlinear_method`), contracted with the
gradient at that output (for the softmax the ``sv:a`` point, the probabilities).

It neglects second-order terms (products of errors of two points); the errors of different layers
still add up in logit space before the softmax, so they can cancel or compound.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from codesign.beside import Beside
from codesign.nn_attrs import child_module, tensor_attr
from codesign.quant import (
    FLOAT_BITS,
    QUANTIZERS,
    Calibration,
    IntNonlinear,
    LayerQuant,
    QuantAttention,
    QuantConfig,
    nonlinear_modules,
    softmax_point,
)
from hwmodel.arch.intops import NONLINEAR_BITS
from hwmodel.target.vit import is_matmul_layer, layer_names, vit_blocks

MAX_CLASSES = 64
#: the weight choices of one layer whose terms are computed together: as many as fit this many
#: bytes of layer-output errors ([K, N, tokens·out] float32)
WEIGHT_BATCH_BYTES = 64 << 20


def model_digest(model: nn.Module, tensors: tuple[torch.Tensor, ...]) -> str:
    """A short SHA-256 of a model's weights (state dict, by name) and of ``tensors`` (data)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


TermKey = tuple[str, int, float, str, str]


def nonlinear_method(variant: str) -> str:
    """The method field of an integer non-linear operator's term key: ``int`` for the ``poly``
    kernel (the key it always had, so cached term files stay valid), ``int-<variant>`` else."""
    return "int" if variant == "poly" else f"int-{variant}"


def nonlinear_variant(method: str) -> str:
    """The kernel variant of a term key's method field (:func:`nonlinear_method` inverted)."""
    return "poly" if method == "int" else method.removeprefix("int-")


def kernel_choices(
    config: QuantConfig, kernels: Mapping[str, Sequence[str]] | None
) -> dict[str, tuple[str, ...]]:
    """Per op kind, the kernel variants whose terms to compute: ``kernels`` (a search space's
    choices) for the kinds it names, the ``config``'s own variant for the others."""
    given = kernels or {}
    return {kind: tuple(given.get(kind, (variant,))) for kind, variant in config.kernels.items()}


def save_term_file(path: Path, fingerprint: str, terms: dict[TermKey, torch.Tensor]) -> int:
    """Write a proxy's cached terms (on the CPU) with the fingerprint they were computed for."""
    torch.save({"fingerprint": fingerprint, "terms": {k: v.cpu() for k, v in terms.items()}}, path)
    return len(terms)


def load_term_file(
    path: Path, fingerprint: str, into: dict[TermKey, torch.Tensor], device: torch.device
) -> int:
    """Add the terms :func:`save_term_file` wrote for ``fingerprint`` to ``into`` (on ``device``);
    a missing, truncated, foreign or other-fingerprint file adds none. Returns the file's count."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a missing, truncated or foreign file is just not a cache hit
        return 0
    if not isinstance(blob, dict) or blob.get("fingerprint") != fingerprint:
        return 0
    terms = blob.get("terms", {})
    for key, value in terms.items():
        if isinstance(key, tuple) and len(key) == 5 and isinstance(value, torch.Tensor):
            into[(str(key[0]), int(key[1]), float(key[2]), str(key[3]), str(key[4]))] = value.to(device)
    return len(terms)


@dataclass(frozen=True)
class _SpaceChoices:
    """What :meth:`LinearizedKL.precompute` computes the terms of: a space's per-layer choices and
    the calibration methods (and softmax quantizer) of ``config``."""

    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]
    pot_ratios: tuple[float, ...]
    config: QuantConfig

    def first(self, name: str) -> str:
        """The quantizer of a matmul layer's first operand (the probabilities of ``.sv``)."""
        if not name.endswith(".sv"):
            return "fixed"
        return "log2" if self.config.softmax == "log2" else "unsigned"


def _share(names: Sequence[str], cost: Callable[[str], int]) -> list[str]:
    """About half of ``names`` by ``cost`` (largest first, each to the lighter side): the share of
    a second process, in the order of ``names``."""
    loads, sides = [0, 0], [set[str](), set[str]()]
    for name in sorted(names, key=cost, reverse=True):
        side = 0 if loads[0] <= loads[1] else 1
        loads[side] += cost(name)
        sides[side].add(name)
    return [n for n in names if n in sides[1]]


def _apply_fn(module: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """y = f(x, W) without the bias (bilinear in x and W)."""
    if isinstance(module, nn.Conv2d):
        conv = module

        def f_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)

        return f_conv
    return lambda x, w: F.linear(x, w)


class Recorder:
    """A shadow copy of a model whose forward pass keeps what the proxies contract: the input and
    the output of every layer (the output with its gradient retained), Q/K/P/V of every attention
    matmul (``points``, gradients retained) and the inputs and outputs of the LayerNorm and GELU
    modules. The dictionaries hold the latest call's tensors."""

    def __init__(self, model: nn.Module) -> None:
        shadow = copy.deepcopy(model).eval()
        for p in shadow.parameters():
            p.requires_grad_(False)
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.points: dict[str, torch.Tensor] = {}
        self.nl_inputs: dict[str, torch.Tensor] = {}
        for name in layer_names(model):
            if is_matmul_layer(name):
                continue

            def hook(
                _m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor, name: str = name
            ) -> None:
                self.inputs[name] = args[0].detach()
                out.retain_grad()
                self.outputs[name] = out

            shadow.get_submodule(name).register_forward_hook(hook)
        for name, _kind in nonlinear_modules(model):

            def nl_hook(
                _m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor, name: str = name
            ) -> None:
                self.nl_inputs[f"{name}:in"] = args[0].detach()
                out.retain_grad()
                self.outputs[f"{name}:out"] = out

            shadow.get_submodule(name).register_forward_hook(nl_hook)

        def observe(key: str, x: torch.Tensor) -> None:
            x.retain_grad()
            self.points[key] = x

        float_lq = LayerQuant(FLOAT_BITS, FLOAT_BITS, 0.0)
        for i, block in enumerate(vit_blocks(shadow)):
            block.attn = QuantAttention(
                child_module(block, "attn"), f"blocks.{i}.attn", float_lq, float_lq, {}, "uniform", observe
            )
        self.shadow = shadow

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The logits of ``images`` (with the graph, for backward passes); fills the dictionaries."""
        for d in (self.inputs, self.outputs, self.points, self.nl_inputs):
            d.clear()
        x = images.detach().clone().requires_grad_(True)
        z: torch.Tensor = self.shadow(x)
        return z


class LinearizedKL:
    """The linearized-KL proxy of one model on a batch of calibration images."""

    def __init__(self, model: nn.Module, images: torch.Tensor, calibration: Calibration) -> None:
        self.model = model
        self.calibration = calibration
        self.names = layer_names(model)
        rec = Recorder(model)
        z = rec(images)
        inputs, outputs, points, nl_inputs = rec.inputs, rec.outputs, rec.points, rec.nl_inputs
        n_classes = int(z.shape[1])
        if n_classes > MAX_CLASSES:
            raise ValueError(f"linearized KL needs ≤ {MAX_CLASSES} classes, got {n_classes}")
        tensors = {**outputs, **points}
        # [C, N, M]: d z_c / d (tensor) for every image n and element m (filled class by class)
        self._grad = {k: t.new_empty(n_classes, t.shape[0], t[0].numel()) for k, t in tensors.items()}
        for c in range(n_classes):
            z[:, c].sum().backward(retain_graph=c < n_classes - 1)  # type: ignore[no-untyped-call]
            for key, t in tensors.items():
                assert t.grad is not None
                self._grad[key][c].copy_(t.grad.reshape(t.shape[0], -1))
                t.grad = None
        self._inputs = inputs
        self._nl_inputs = nl_inputs
        self._points = {k: v.detach() for k, v in points.items()}
        self._z = z.detach()
        self._logp = F.log_softmax(self._z, dim=-1)
        self._p = self._logp.exp()
        self._fns = {n: _apply_fn(model.get_submodule(n)) for n in self.names if not is_matmul_layer(n)}
        self._memo: dict[tuple[str, int, float, str, str], torch.Tensor] = {}

    def _contract(self, key: str, y: torch.Tensor) -> torch.Tensor:
        g = self._grad[key]
        return torch.einsum("cnm,nm->nc", g, y.reshape(y.shape[0], -1))

    def _weight_term(self, name: str, bits: int, ratio: float, method: str) -> torch.Tensor:
        key = (name, bits, ratio, method, "w")
        if key not in self._memo:
            self._weight_terms(name, [(bits, ratio)], method)
        return self._memo[key]

    def _weight_terms(self, name: str, choices: list[tuple[int, float]], method: str) -> None:
        """The terms of several (bits, PoT ratio) choices of one layer's weight at once: one
        product of the layer input with every weight error, one contraction with the gradient
        (which is read once instead of once per choice)."""
        w = tensor_attr(self.model.get_submodule(name), "weight").detach()
        cal = self.calibration
        dws = [cal.weight(name, LayerQuant(b, 32, r), method).dequantize() - w for b, r in choices]
        x = self._inputs[name]
        if isinstance(self.model.get_submodule(name), nn.Linear):
            dw = torch.cat(dws)  # [K·out, in]: every choice in one product
            y = F.linear(x, dw).reshape(*x.shape[:-1], len(dws), w.shape[0]).movedim(-2, 0)
        else:
            y = torch.stack([self._fns[name](x, d) for d in dws])
        dz = torch.einsum("cnm,knm->knc", self._grad[name], y.reshape(len(dws), x.shape[0], -1))
        for (b, r), term in zip(choices, dz, strict=True):
            self._memo[(name, b, r, method, "w")] = term

    def _input_term(self, name: str, bits: int, method: str) -> torch.Tensor:
        key = (name, bits, 0.0, method, "a")
        if key not in self._memo:
            x = self._inputs[name]
            s = self.calibration.act_scale(f"{name}:a", bits, "fixed", method)
            dx = QUANTIZERS["fixed"](x, torch.tensor(s), bits) - x
            w = tensor_attr(self.model.get_submodule(name), "weight").detach()
            self._memo[key] = self._contract(name, self._fns[name](dx, w))
        return self._memo[key]

    def _point_term(self, point: str, bits: int, kind: str, method: str) -> torch.Tensor:
        key = (point, bits, 0.0, method, kind)
        if key not in self._memo:
            a = self._points[point]
            s = self.calibration.act_scale(point, bits, kind, method)
            da = QUANTIZERS[kind](a, torch.tensor(s), bits) - a
            self._memo[key] = self._contract(point, da)
        return self._memo[key]

    def _nonlinear_term(self, point: str, kind: str, variant: str = "poly") -> torch.Tensor:
        """δz of an integer non-linear operator (input ``point``, kernel ``variant``) against its
        float original."""
        key = (point, NONLINEAR_BITS, 0.0, nonlinear_method(variant), kind)
        if key not in self._memo:
            scale = self.calibration.nonlinear_scale(point)
            name = point.rsplit(":", 1)[0]
            if kind == "softmax":
                x = self._points[point]
                dy = IntNonlinear(kind, scale, variant=variant)(x) - x.softmax(dim=-1)
                out_key = f"{name.removesuffix('.softmax')}.sv:a"
            else:
                x = self._nl_inputs[point]
                mod = self.model.get_submodule(name)
                affine = mod if isinstance(mod, nn.LayerNorm) else None
                approximate = str(getattr(mod, "approximate", "none"))
                with torch.no_grad():
                    dy = IntNonlinear(kind, scale, affine, approximate, variant)(x) - mod(x)
                out_key = f"{name}:out"
            self._memo[key] = self._contract(out_key, dy)
        return self._memo[key]

    def nonlinear_delta(self, kernels: Mapping[str, str] | None = None) -> torch.Tensor:
        """Σ δz of every integer non-linear operator (``nonlinear: int``), each kind with its
        ``kernels`` variant (default ``poly``)."""
        variant = kernels or {}
        dz = torch.zeros_like(self._z)
        for i in range(len(vit_blocks(self.model))):
            point = softmax_point(f"blocks.{i}.attn")
            dz += self._nonlinear_term(point, "softmax", variant.get("softmax", "poly"))
        for name, kind in nonlinear_modules(self.model):
            dz += self._nonlinear_term(f"{name}:in", kind, variant.get(kind, "poly"))
        return dz

    def delta_logits(self, config: QuantConfig) -> torch.Tensor:
        dz = self.nonlinear_delta(config.kernels) if config.nonlinear == "int" else torch.zeros_like(self._z)
        am, wm = config.act_calibration, config.weight_calibration
        soft = "log2" if config.softmax == "log2" else "unsigned"
        for name in self.names:
            lq = config.for_layer(name)
            if is_matmul_layer(name):
                first = soft if name.endswith(".sv") else "fixed"
                if lq.act_bits < FLOAT_BITS:
                    dz += self._point_term(f"{name}:a", lq.act_bits, first, am)
                if lq.weight_bits < FLOAT_BITS:
                    dz += self._point_term(f"{name}:b", lq.weight_bits, "fixed", am)
                continue
            if lq.weight_bits < FLOAT_BITS:
                dz += self._weight_term(name, lq.weight_bits, lq.pot_ratio, wm)
            if lq.act_bits < FLOAT_BITS:
                dz += self._input_term(name, lq.act_bits, am)
        return dz

    def precompute(
        self,
        weight_bits: tuple[int, ...],
        act_bits: tuple[int, ...],
        pot_ratios: tuple[float, ...],
        config: QuantConfig,
        progress: bool = False,
        kernels: Mapping[str, Sequence[str]] | None = None,
        processes: int = 1,
    ) -> int:
        """Fill the memo for every per-layer choice of a search space (methods from ``config``;
        with ``nonlinear: int`` the non-linear terms of every kernel variant of ``kernels``, per
        kind, :func:`kernel_choices`); returns the number of cached terms. ``progress``: a progress
        bar over the layers (shown only when some term is missing). ``processes`` = 2: the layers
        are shared with a forked process (:class:`codesign.beside.Beside`), each layer's terms
        computed whole on one side, so the terms are the same bits as in one process."""
        choices = _SpaceChoices(weight_bits, act_bits, pot_ratios, config)
        cost = {n: self._layer_cost(n, choices) for n in self.names}
        todo = [n for n in self.names if cost[n] > 0]
        split = processes > 1 and len(todo) > 1 and self._z.device.type == "cpu"  # (no fork under CUDA)
        theirs = _share(todo, cost.__getitem__) if split else []
        beside = Beside(lambda: self._computed(theirs, choices)) if theirs else None
        mine = [n for n in todo if n not in theirs]
        for name in tqdm(mine, desc="proxy terms", unit="layer", disable=not progress, delay=1.0):
            self._layer_terms(name, choices)
        got = beside.result() if beside is not None else None
        if got is not None:
            self._memo.update((k, torch.from_numpy(v)) for k, v in got.items())
        else:  # no second process, or it failed: its layers here
            for name in theirs:
                self._layer_terms(name, choices)
        if config.nonlinear == "int":
            variants = kernel_choices(config, kernels)
            for i in range(max(len(v) for v in variants.values())):
                self.nonlinear_delta({k: v[min(i, len(v) - 1)] for k, v in variants.items()})
        return len(self._memo)

    def _missing_weight_choices(self, name: str, choices: _SpaceChoices) -> list[tuple[int, float]]:
        wm = choices.config.weight_calibration
        return [
            (b, float(r))
            for b in choices.weight_bits
            for r in choices.pot_ratios
            if b < FLOAT_BITS and (r == 0 or b <= 8) and (name, b, float(r), wm, "w") not in self._memo
        ]

    def _missing_act_bits(self, name: str, choices: _SpaceChoices) -> list[int]:
        am = choices.config.act_calibration
        if is_matmul_layer(name):  # both operands' terms (what _layer_terms computes)
            keys = ((f"{name}:a", choices.first(name)), (f"{name}:b", "fixed"))
            return [
                b
                for b in choices.act_bits
                if b < FLOAT_BITS and any((point, b, 0.0, am, kind) not in self._memo for point, kind in keys)
            ]
        return [b for b in choices.act_bits if b < FLOAT_BITS and (name, b, 0.0, am, "a") not in self._memo]

    def _layer_cost(self, name: str, choices: _SpaceChoices) -> int:
        """Elements of layer-output errors a layer's missing terms take (0: none missing)."""
        size = self._grad[name][0].numel() if name in self._grad else self._grad[f"{name}:a"][0].numel()
        if is_matmul_layer(name):
            return 2 * size * len(self._missing_act_bits(name, choices))
        return size * (
            len(self._missing_weight_choices(name, choices)) + len(self._missing_act_bits(name, choices))
        )

    def _layer_terms(self, name: str, choices: _SpaceChoices) -> None:
        """Every missing term of one layer (weights in batches, then inputs)."""
        am, wm = choices.config.act_calibration, choices.config.weight_calibration
        if is_matmul_layer(name):
            for b in choices.act_bits:
                if b < FLOAT_BITS:
                    self._point_term(f"{name}:a", b, choices.first(name), am)
                    self._point_term(f"{name}:b", b, "fixed", am)
            return
        missing = self._missing_weight_choices(name, choices)
        per_choice = 4 * self._grad[name][0].numel()  # bytes of one choice's layer-output error
        batch = max(1, min(len(missing), WEIGHT_BATCH_BYTES // per_choice))
        for i in range(0, len(missing), batch):
            self._weight_terms(name, missing[i : i + batch], wm)
        for b in choices.act_bits:
            if b < FLOAT_BITS:
                self._input_term(name, b, am)

    def _computed(self, names: Sequence[str], choices: _SpaceChoices) -> dict[TermKey, Any]:
        """The terms ``names`` add to the memo, as numpy arrays (what a forked process sends)."""
        before = set(self._memo)
        for name in names:
            self._layer_terms(name, choices)
        return {k: v.numpy() for k, v in self._memo.items() if k not in before}

    def fingerprint(self) -> str:
        """Identifies the model and the proxy images (the FP32 logits depend on both)."""
        return model_digest(self.model, (self._z,))

    def save_terms(self, path: Path) -> int:
        """Write the memoised logit terms (a cache for resumed searches and other workers)."""
        return save_term_file(path, self.fingerprint(), self._memo)

    def load_terms(self, path: Path) -> int:
        """Reuse terms saved by :meth:`save_terms` for this very model and images (else none)."""
        return load_term_file(path, self.fingerprint(), self._memo, self._z.device)

    def score(self, config: QuantConfig) -> float:
        """−mean KL(p_fp32 ‖ softmax(z + Σ δz)); 0 for FP32, lower for noisier configs."""
        logq = F.log_softmax(self._z + self.delta_logits(config), dim=-1)
        return -float((self._p * (self._logp - logq)).sum(-1).mean())
