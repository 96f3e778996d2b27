"""Proxies for any class count, computed streamed over batches of the proxy images.

``linkl`` (:mod:`codesign.proxy._linear`) keeps the gradients of every logit at every quantization
point for all images at once ([C, N, M] per point): impossible for 1,000 classes. The two proxies
here take their backward passes on a few images at a time (forward, backward passes, contract every
cached term for those images, free the gradients), so memory is bounded by one batch
(:data:`GRAD_BATCH_BYTES`), whatever the number of images and classes:

* :class:`TopKLinearizedKL` (kind ``linkl_topk``): the linearized KL restricted to each image's k most
  likely FP32 classes plus one remainder class (its logit is the logsumexp of the other classes,
  its first-order change the softmax-weighted mean of their δz: one more backward pass). The terms
  are δz over these k + 1 coarse categories; a call sums them and returns −KL over the categories.
  With k ≥ C − 1 it is ``linkl`` (the remainder is the last class).
* :class:`FisherProxy` (kind ``fit``, Zandonati et al., ICLR 2023): the empirical diagonal Fisher
  information (squared per-image gradients of the cross-entropy) times the squared quantization
  error, summed over the elements of every weight and activation point; one backward pass per
  batch. A call returns −Σ of the config's terms.

Both cache one term per (point, choice) under the same keys as ``linkl`` and precompute every
choice of a search space at once; a term missing at a call is computed then (one streamed pass over
the images for the config's missing terms). Every tensor follows the device of the model and images.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input
from tqdm import tqdm

from codesign.nn_attrs import tensor_attr
from codesign.proxy._linear import (
    Recorder,
    TermKey,
    _apply_fn,
    kernel_choices,
    load_term_file,
    model_digest,
    nonlinear_method,
    nonlinear_variant,
    save_term_file,
)
from codesign.quant import (
    FLOAT_BITS,
    QUANTIZERS,
    Calibration,
    IntNonlinear,
    LayerQuant,
    QuantConfig,
    nonlinear_modules,
    softmax_point,
)
from hwmodel.arch.intops import KERNELS, NONLINEAR_BITS
from hwmodel.target.vit import is_matmul_layer, layer_names, vit_blocks

#: (point or layer, bits, PoT ratio, calibration method, kind) — the keys of ``linkl``'s memo:
#: kind ``w`` a layer's weight, ``a`` its input, ``fixed``/``unsigned``/``log2`` an attention
#: matmul operand, ``softmax``/``layernorm``/``gelu`` an integer non-linear operator

#: the classes :class:`TopKLinearizedKL` keeps per image by default (plus the remainder)
TOPK_CLASSES = 5
#: the gradients one batch of images may hold (all backward passes of the batch, every point)
GRAD_BATCH_BYTES = 1 << 30
#: the quantization errors δW of the weights kept during a streamed pass (beyond: recomputed per batch)
DW_CACHE_BYTES = 2 << 30
#: images per no-grad forward pass (the FP32 logits)
FORWARD_BATCH = 64


def nonlinear_keys(model: nn.Module, kernels: Mapping[str, Iterable[str]] | None = None) -> list[TermKey]:
    """The terms of the integer softmax, LayerNorm and GELU operators (``nonlinear: int``), per
    kind one for each of its ``kernels`` variants (default ``poly``)."""
    given = kernels or {}
    methods = {k: [nonlinear_method(v) for v in given.get(k, ("poly",))] for k in KERNELS}
    keys: list[TermKey] = [
        (softmax_point(f"blocks.{i}.attn"), NONLINEAR_BITS, 0.0, m, "softmax")
        for i in range(len(vit_blocks(model)))
        for m in methods["softmax"]
    ]
    keys += [
        (f"{name}:in", NONLINEAR_BITS, 0.0, m, kind)
        for name, kind in nonlinear_modules(model)
        for m in methods[kind]
    ]
    return keys


def _first_kind(name: str, config: QuantConfig) -> str:
    """The quantizer of a matmul layer's first operand (the softmax output of ``sv``)."""
    if name.endswith(".sv"):
        return "log2" if config.softmax == "log2" else "unsigned"
    return "fixed"


def config_keys(names: Sequence[str], config: QuantConfig, model: nn.Module) -> list[TermKey]:
    """The terms whose sum is the config's change (the same choices as ``LinearizedKL.delta_logits``)."""
    kernels = {k: (v,) for k, v in config.kernels.items()}
    keys = nonlinear_keys(model, kernels) if config.nonlinear == "int" else []
    am, wm = config.act_calibration, config.weight_calibration
    for name in names:
        lq = config.for_layer(name)
        if is_matmul_layer(name):
            if lq.act_bits < FLOAT_BITS:
                keys.append((f"{name}:a", lq.act_bits, 0.0, am, _first_kind(name, config)))
            if lq.weight_bits < FLOAT_BITS:
                keys.append((f"{name}:b", lq.weight_bits, 0.0, am, "fixed"))
            continue
        if lq.weight_bits < FLOAT_BITS:
            keys.append((name, lq.weight_bits, float(lq.pot_ratio), wm, "w"))
        if lq.act_bits < FLOAT_BITS:
            keys.append((name, lq.act_bits, 0.0, am, "a"))
    return keys


def space_keys(
    names: Sequence[str],
    weight_bits: Iterable[int],
    act_bits: Iterable[int],
    pot_ratios: Iterable[float],
    config: QuantConfig,
    model: nn.Module,
    kernels: Mapping[str, Sequence[str]] | None = None,
) -> list[TermKey]:
    """Every term a search over these choices can ask for (methods from ``config``; non-linear
    terms of the ``kernels`` variants, :func:`codesign.proxy._linear.kernel_choices`), for every
    layer (also the space's fixed layers: their few terms are cheap, and configs drawn without
    the space's fixed layers find them)."""
    wb, ab, ratios = tuple(weight_bits), tuple(act_bits), tuple(float(r) for r in pot_ratios)
    keys = nonlinear_keys(model, kernel_choices(config, kernels)) if config.nonlinear == "int" else []
    am, wm = config.act_calibration, config.weight_calibration
    for name in names:
        if is_matmul_layer(name):
            for b in ab:
                if b < FLOAT_BITS:
                    keys.append((f"{name}:a", b, 0.0, am, _first_kind(name, config)))
                    keys.append((f"{name}:b", b, 0.0, am, "fixed"))
            continue
        keys += [(name, b, r, wm, "w") for b in wb for r in ratios if b < FLOAT_BITS and (r == 0 or b <= 8)]
        keys += [(name, b, 0.0, am, "a") for b in ab if b < FLOAT_BITS]
    return list(dict.fromkeys(keys))


class _Batch:
    """One batch of a streamed pass: the recorded tensors and the gradients [C', b, M] of the
    proxy's C' outputs at every point some term needs."""

    def __init__(self, rec: Recorder, grads: dict[str, torch.Tensor], start: int) -> None:
        self.rec = rec
        self.grads = grads
        self.start = start
        self.size = next(iter(grads.values())).shape[1] if grads else 0


def _grad_key(key: TermKey) -> str:
    """The tensor whose gradient a term contracts (layer output, point, operator output)."""
    point, _bits, _r, _m, kind = key
    if kind in ("w", "a"):
        return point
    if kind == "softmax":
        return f"{point.rsplit(':', 1)[0].removesuffix('.softmax')}.sv:a"
    if kind in ("layernorm", "gelu"):
        return f"{point.rsplit(':', 1)[0]}:out"
    return point


class StreamedProxy(ABC):
    """The machinery both streamed proxies share: terms, the streamed pass, the cache file."""

    #: the kind name (``PROXY_KINDS``)
    kind: str = ""

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        calibration: Calibration,
        *,
        batch_bytes: int = GRAD_BATCH_BYTES,
    ) -> None:
        self.model = model
        self.calibration = calibration
        self.names = layer_names(model)
        self.batch_bytes = batch_bytes
        self._images = images
        self._fns = {n: _apply_fn(model.get_submodule(n)) for n in self.names if not is_matmul_layer(n)}
        self._terms: dict[TermKey, torch.Tensor] = {}
        with torch.no_grad():
            zs = [model(images[i : i + FORWARD_BATCH]) for i in range(0, images.shape[0], FORWARD_BATCH)]
        self._z = torch.cat(zs).detach()
        self._digest: str | None = None

    @property
    def n_images(self) -> int:
        return int(self._z.shape[0])

    # ------------------------------------------------------------------ what a subclass supplies

    @abstractmethod
    def _outputs(self, z: torch.Tensor, start: int) -> torch.Tensor:
        """[C', b]: the per-image scalars whose gradients the terms contract (images start…)."""

    @abstractmethod
    def _contract(self, keys: list[TermKey], batch: _Batch) -> None:
        """Add this batch's share of ``keys`` to the terms being computed."""

    @abstractmethod
    def _begin(self, keys: list[TermKey]) -> None:
        """Set up the accumulators of ``keys`` (before the first batch)."""

    @abstractmethod
    def _end(self, keys: list[TermKey]) -> None:
        """Turn the accumulators into terms (after the last batch)."""

    @abstractmethod
    def _score(self, keys: list[TermKey]) -> float:
        """The proxy value (higher is better) of the config whose terms are ``keys``."""

    def _tag(self) -> str:
        """What besides the model and the images the terms depend on (the kind, its settings)."""
        return self.kind

    # ------------------------------------------------------------------ the streamed pass

    def _weight_error(self, key: TermKey) -> torch.Tensor:
        name, bits, ratio, method, _kind = key
        w = tensor_attr(self.model.get_submodule(name), "weight").detach()
        return self.calibration.weight(name, LayerQuant(bits, 32, ratio), method).dequantize() - w

    def _act_error(self, key: TermKey, x: torch.Tensor) -> torch.Tensor:
        """δx = Q(x) − x of a layer input (``a``) or an attention operand."""
        point, bits, _r, method, kind = key
        quantizer = "fixed" if kind == "a" else kind
        scale_point = f"{point}:a" if kind == "a" else point
        s = self.calibration.act_scale(scale_point, bits, quantizer, method)
        return QUANTIZERS[quantizer](x, torch.tensor(s, device=x.device), bits) - x

    def _nonlinear_error(self, key: TermKey, rec: Recorder) -> torch.Tensor:
        """δy of an integer non-linear operator (the kernel variant of the key's method) on the
        FP32 activations of this batch."""
        point, _bits, _r, method, kind = key
        variant = nonlinear_variant(method)
        scale = self.calibration.nonlinear_scale(point)
        name = point.rsplit(":", 1)[0]
        if kind == "softmax":
            x = rec.points[point].detach()
            err: torch.Tensor = IntNonlinear(kind, scale, variant=variant)(x) - x.softmax(dim=-1)
            return err
        x = rec.nl_inputs[point]
        mod = self.model.get_submodule(name)
        affine = mod if isinstance(mod, nn.LayerNorm) else None
        approximate = str(getattr(mod, "approximate", "none"))
        with torch.no_grad():
            dy: torch.Tensor = IntNonlinear(kind, scale, affine, approximate, variant)(x) - mod(x)
        return dy

    def compute(self, keys: Iterable[TermKey], progress: bool = False) -> int:
        """Compute the missing terms of ``keys`` in one streamed pass over the images; returns
        how many were computed."""
        todo = [k for k in dict.fromkeys(keys) if k not in self._terms]
        if not todo:
            return 0
        needed = {_grad_key(k) for k in todo}
        rec = Recorder(self.model)
        self._begin(todo)
        n, start, size = self.n_images, 0, 1  # the first batch is one image: it sizes the others
        bar = tqdm(total=n, desc=f"proxy terms ({self.kind})", unit="img", disable=not progress, delay=1.0)
        while start < n:
            z = rec(self._images[start : start + size])
            outs = self._outputs(z, start)
            b = int(z.shape[0])
            per_point: dict[str, list[torch.Tensor]] = {k: [] for k in needed}
            tensors = {**rec.outputs, **rec.points}
            for c in range(outs.shape[0]):
                outs[c].sum().backward(retain_graph=c < outs.shape[0] - 1)  # type: ignore[no-untyped-call]
                for key, t in tensors.items():
                    if key in per_point:
                        assert t.grad is not None
                        per_point[key].append(t.grad.reshape(b, -1))
                    t.grad = None
            grads = {k: torch.stack(v) for k, v in per_point.items()}
            del z, outs, tensors, per_point
            self._contract(todo, _Batch(rec, grads, start))
            if start == 0:
                per_image = sum(g.numel() * g.element_size() for g in grads.values())
                size = max(1, self.batch_bytes // max(per_image, 1))
            start += b
            bar.update(b)
            del grads
        bar.close()
        self._end(todo)
        return len(todo)

    # ------------------------------------------------------------------ the public interface

    def precompute(
        self,
        weight_bits: tuple[int, ...],
        act_bits: tuple[int, ...],
        pot_ratios: tuple[float, ...],
        config: QuantConfig,
        progress: bool = False,
        kernels: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Compute every term of a search space's choices (methods from ``config``; non-linear
        kernel variants ``kernels``); returns the number of cached terms."""
        keys = space_keys(self.names, weight_bits, act_bits, pot_ratios, config, self.model, kernels)
        self.compute(keys, progress=progress)
        return len(self._terms)

    def score(self, config: QuantConfig) -> float:
        """The proxy of ``config`` (0 for FP32, lower for noisier configs)."""
        keys = config_keys(self.names, config, self.model)
        self.compute(keys)
        return self._score(keys)

    def fingerprint(self) -> str:
        """Identifies the model, the proxy images (through the FP32 logits) and the kind."""
        if self._digest is None:
            self._digest = model_digest(self.model, (self._z,))
        return f"{self._tag()}:{self._digest}"

    def save_terms(self, path: Path) -> int:
        """Write the terms (a cache for resumed searches and other workers)."""
        return save_term_file(path, self.fingerprint(), self._terms)

    def load_terms(self, path: Path) -> int:
        """Reuse terms saved by :meth:`save_terms` for this very model, images and kind (else none)."""
        return load_term_file(path, self.fingerprint(), self._terms, self._z.device)


class TopKLinearizedKL(StreamedProxy):
    """``linkl`` over each image's ``k`` most likely FP32 classes plus one remainder class."""

    kind = "linkl_topk"

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        calibration: Calibration,
        k: int = TOPK_CLASSES,
        *,
        batch_bytes: int = GRAD_BATCH_BYTES,
    ) -> None:
        super().__init__(model, images, calibration, batch_bytes=batch_bytes)
        if k < 1:
            raise ValueError(f"top-k needs k ≥ 1, got {k}")
        n_classes = int(self._z.shape[1])
        self.k = min(k, n_classes - 1)
        self._top = self._z.topk(self.k, dim=1).indices  # [N, k]
        self._zc = self._coarse(self._z, self._top)  # [N, k + 1]
        self._logp = F.log_softmax(self._zc, dim=-1)
        self._p = self._logp.exp()
        self._acc: dict[TermKey, torch.Tensor] = {}
        self._dw: dict[tuple[str, tuple[TermKey, ...]], torch.Tensor] = {}
        self._dw_bytes = 0

    @staticmethod
    def _coarse(z: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        """[b, k + 1]: the top-k logits and the logsumexp of the other classes."""
        rest = z.scatter(1, top, float("-inf")).logsumexp(dim=1, keepdim=True)
        return torch.cat([z.gather(1, top), rest], dim=1)

    def _tag(self) -> str:
        return f"{self.kind}{self.k}"

    @property
    def categories(self) -> int:
        return self.k + 1

    def _outputs(self, z: torch.Tensor, start: int) -> torch.Tensor:
        return self._coarse(z, self._top[start : start + z.shape[0]]).T

    def _begin(self, keys: list[TermKey]) -> None:
        self._acc = {k: self._z.new_zeros(self.n_images, self.categories) for k in keys}
        self._dw, self._dw_bytes = {}, 0

    def _end(self, keys: list[TermKey]) -> None:
        self._terms.update(self._acc)
        self._acc, self._dw, self._dw_bytes = {}, {}, 0

    def _weight_errors(self, name: str, keys: list[TermKey]) -> torch.Tensor:
        """[K, *weight]: δW of each choice (kept between batches up to :data:`DW_CACHE_BYTES`)."""
        ck = (name, tuple(keys))
        if ck in self._dw:
            return self._dw[ck]
        dw = torch.stack([self._weight_error(k) for k in keys])
        nbytes = dw.numel() * dw.element_size()
        if self._dw_bytes + nbytes <= DW_CACHE_BYTES:
            self._dw[ck] = dw
            self._dw_bytes += nbytes
        return dw

    def _contract(self, keys: list[TermKey], batch: _Batch) -> None:
        rec, grads, b = batch.rec, batch.grads, batch.size
        rows = slice(batch.start, batch.start + b)
        weights: dict[str, list[TermKey]] = {}
        inputs: dict[str, list[TermKey]] = {}
        for key in keys:
            if key[4] == "w":
                weights.setdefault(key[0], []).append(key)
            elif key[4] == "a":
                inputs.setdefault(key[0], []).append(key)
            elif key[4] in ("softmax", "layernorm", "gelu"):
                dy = self._nonlinear_error(key, rec)
                self._acc[key][rows] = torch.einsum("cbm,bm->bc", grads[_grad_key(key)], dy.reshape(b, -1))
            else:
                a = rec.points[key[0]].detach()
                da = self._act_error(key, a)
                self._acc[key][rows] = torch.einsum("cbm,bm->bc", grads[key[0]], da.reshape(b, -1))
        n_cat = self.categories
        for name, wkeys in weights.items():
            mod = self.model.get_submodule(name)
            dw = self._weight_errors(name, wkeys)
            x, g = rec.inputs[name], grads[name]
            n_k = len(wkeys)
            if isinstance(mod, nn.Linear) and n_cat <= n_k:
                # through each image's weight gradient G = gᵀx: C' products instead of K
                xt = x.reshape(b, -1, x.shape[-1])
                gt = g.reshape(n_cat, b, xt.shape[1], -1)
                flat = dw.reshape(n_k, -1)
                dz = x.new_empty(n_k, b, n_cat)
                for c in range(n_cat):
                    w_grad = torch.bmm(gt[c].transpose(1, 2), xt)  # [b, out, in]
                    dz[:, :, c] = (w_grad.reshape(b, -1) @ flat.T).T
            else:
                if isinstance(mod, nn.Linear):
                    y = F.linear(x, dw.reshape(-1, dw.shape[-1]))
                    y = y.reshape(*x.shape[:-1], n_k, dw.shape[1]).movedim(-2, 0)
                else:
                    y = torch.stack([self._fns[name](x, d) for d in dw])
                dz = torch.einsum("cbm,kbm->kbc", g, y.reshape(n_k, b, -1))
            for key, term in zip(wkeys, dz, strict=True):
                self._acc[key][rows] = term
        for name, akeys in inputs.items():
            mod = self.model.get_submodule(name)
            w = tensor_attr(mod, "weight").detach()
            x, g = rec.inputs[name], grads[name]
            dx = torch.stack([self._act_error(k, x) for k in akeys])
            n_a = len(akeys)
            if isinstance(mod, nn.Linear) and n_cat < n_a:
                gx = g.reshape(n_cat, b, -1, w.shape[0]) @ w  # gradients at the input
                dz = torch.einsum("cbm,abm->abc", gx.reshape(n_cat, b, -1), dx.reshape(n_a, b, -1))
            else:
                y = (
                    F.linear(dx, w)
                    if isinstance(mod, nn.Linear)
                    else torch.stack([self._fns[name](d, w) for d in dx])
                )
                dz = torch.einsum("cbm,abm->abc", g, y.reshape(n_a, b, -1))
            for key, term in zip(akeys, dz, strict=True):
                self._acc[key][rows] = term

    def delta_logits(self, config: QuantConfig) -> torch.Tensor:
        """[N, k + 1]: the first-order change of the coarse logits."""
        keys = config_keys(self.names, config, self.model)
        self.compute(keys)
        return self._delta(keys)

    def _delta(self, keys: list[TermKey]) -> torch.Tensor:
        dz = torch.zeros_like(self._zc)
        for key in keys:
            dz += self._terms[key]
        return dz

    def _score(self, keys: list[TermKey]) -> float:
        """−mean KL(p_fp32 ‖ softmax(z + Σ δz)) over the k + 1 categories."""
        logq = F.log_softmax(self._zc + self._delta(keys), dim=-1)
        return -float((self._p * (self._logp - logq)).sum(-1).mean())


class FisherProxy(StreamedProxy):
    """FIT: Σ over points of the empirical diagonal Fisher × the squared quantization error."""

    kind = "fit"

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        calibration: Calibration,
        labels: torch.Tensor | None = None,
        *,
        batch_bytes: int = GRAD_BATCH_BYTES,
    ) -> None:
        super().__init__(model, images, calibration, batch_bytes=batch_bytes)
        self._labels = (self._z.argmax(1) if labels is None else labels).to(self._z.device)
        self._acc: dict[TermKey, torch.Tensor] = {}
        self._fisher: dict[str, torch.Tensor] = {}

    def _tag(self) -> str:
        return f"{self.kind}:{model_digest(nn.Module(), (self._labels,))}"

    def _outputs(self, z: torch.Tensor, start: int) -> torch.Tensor:
        y = self._labels[start : start + z.shape[0]]
        return F.cross_entropy(z, y, reduction="none")[None]

    def _begin(self, keys: list[TermKey]) -> None:
        self._acc = {k: self._z.new_zeros(()) for k in keys if k[4] != "w"}
        self._fisher = {}

    def _end(self, keys: list[TermKey]) -> None:
        for key in keys:
            if key[4] == "w":
                self._terms[key] = (
                    self._fisher[key[0]] * self._weight_error(key).square()
                ).sum() / self.n_images
            else:
                self._terms[key] = self._acc[key] / self.n_images
        self._acc, self._fisher = {}, {}

    def _contract(self, keys: list[TermKey], batch: _Batch) -> None:
        rec, grads, b = batch.rec, batch.grads, batch.size
        weights = {k[0] for k in keys if k[4] == "w"}
        inputs: dict[str, list[TermKey]] = {}
        for key in keys:
            if key[4] == "w":
                continue
            if key[4] == "a":
                inputs.setdefault(key[0], []).append(key)
                continue
            g2 = grads[_grad_key(key)][0].square()
            if key[4] in ("softmax", "layernorm", "gelu"):
                err = self._nonlinear_error(key, rec)
            else:
                err = self._act_error(key, rec.points[key[0]].detach())
            self._acc[key] += (g2 * err.reshape(b, -1).square()).sum()
        for name in weights:
            mod = self.model.get_submodule(name)
            x, g = rec.inputs[name], grads[name][0]
            w = tensor_attr(mod, "weight")
            if isinstance(mod, nn.Linear):
                xt = x.reshape(b, -1, x.shape[-1])
                w_grad = torch.bmm(g.reshape(b, xt.shape[1], -1).transpose(1, 2), xt)  # [b, out, in]
            else:
                conv = mod
                assert isinstance(conv, nn.Conv2d) and conv.groups == 1
                pad = conv.padding
                assert not isinstance(pad, str)  # ('same' / 'valid' padding: not in a ViT stem)
                # [b, in·kh·kw, L]: the patch each output position sees
                cols = F.unfold(x, conv.kernel_size, conv.dilation, pad, conv.stride)
                w_grad = torch.bmm(g.reshape(b, w.shape[0], -1), cols.transpose(1, 2))
            f = w_grad.square().sum(0).reshape(w.shape)
            self._fisher[name] = self._fisher[name] + f if name in self._fisher else f
        for name, akeys in inputs.items():
            mod = self.model.get_submodule(name)
            w = tensor_attr(mod, "weight").detach()
            x, g = rec.inputs[name], grads[name][0]
            if isinstance(mod, nn.Linear):
                gx = g.reshape(*x.shape[:-1], w.shape[0]) @ w
            else:
                conv = mod
                assert isinstance(conv, nn.Conv2d)
                gy = g.reshape(b, w.shape[0], *rec.outputs[name].shape[2:])
                gx = conv2d_input(  # type: ignore[no-untyped-call]
                    x.shape, w, gy, conv.stride, conv.padding, conv.dilation, conv.groups
                )
            g2 = gx.square()
            for key in akeys:
                self._acc[key] += (g2 * self._act_error(key, x).square()).sum()

    def _score(self, keys: list[TermKey]) -> float:
        """−Σ of the config's terms."""
        return -float(sum(float(self._terms[k]) for k in keys))
