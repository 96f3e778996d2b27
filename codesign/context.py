"""Everything a search needs, built once from a study: workload, device, space, evaluator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from codesign.data import DataSplits, TensorSplit
from codesign.errors import UserError
from codesign.models import DEFAULT_WORKLOAD_NAME, load_default, load_user
from codesign.proxy import TERM_KINDS, Evaluator
from codesign.proxy._evaluator import DEFAULT_BATCH
from codesign.quant import QuantConfig
from codesign.space import SearchSpace, load_space
from codesign.study import Study
from codesign.torch_device import configure, resolve_device
from hwmodel.target.device import Device, load_device
from hwmodel.target.vit import check_model_name
from hwmodel.target.workload import Workload, workload_from_model, workload_from_name

#: test images per forward pass on an image folder (224² inputs) unless ``model.batch_size``
FOLDER_BATCH = 128


@dataclass(frozen=True)
class SearchContext:
    study: Study
    space: SearchSpace
    device: Device
    workload: Workload
    layers: tuple[str, ...]
    evaluator: Evaluator | None
    model: nn.Module | None
    #: Where the proxy's precomputed terms are kept between runs (the run folder), if anywhere.
    cache_dir: Path | None = None

    @property
    def fixed_quant(self) -> QuantConfig | None:
        """The fixed quantization of a hardware-only search (``Study.fixed_quant``)."""
        return self.study.fixed_quant

    def prepare_proxy(self, progress: bool = False, processes: int = 1) -> int:
        """Compute (or read from ``cache_dir/proxy_terms.pt``, ``proxy_terms_<kind>.pt`` for
        ``linkl_topk`` / ``fit``) the proxy's terms of every per-layer choice of the space, so a proxy
        call is ~1 ms; before the trials, not at set-up (a run with no trial left to do needs none).
        ``processes``: :meth:`Evaluator.precompute`'s. Returns the number of terms (0: not needed)."""
        ev = self.evaluator
        if ev is None or ev.proxy_kind not in TERM_KINDS or self.fixed_quant is not None:
            return 0
        cache = self.cache_dir / ev.terms_file if self.cache_dir is not None else None
        return ev.precompute(self.space.quant, cache=cache, progress=progress, processes=processes)

    @property
    def objectives(self) -> tuple[str, ...]:
        if self.fixed_quant is not None:
            return tuple(o for o in self.study.objectives if o != "accuracy") or ("fps", "resources")
        return self.study.objectives


def load_study_model(study: Study) -> tuple[nn.Module, DataSplits] | None:
    """The study's FP32 model and data splits: the shipped default, or the user's timm model,
    checkpoint and data (None when the study names no checkpoint file or no data)."""
    spec = study.model
    if spec.is_default:
        return load_default()
    if spec.checkpoint is None or not spec.checkpoint.is_file() or spec.data is None:
        return None
    return load_user(
        spec.name,
        spec.checkpoint,
        spec.data,
        img_size=spec.img_size,
        model_kwargs=spec.kwargs,
        options=spec.folder,
        seed=study.seed,
    )


def study_evaluator(
    study: Study, model: nn.Module, splits: DataSplits, proxy_kind: str | None = None, worker: int = 0
) -> Evaluator:
    """The evaluator of a study's model and data, on the study's torch device (``worker``: the
    search worker's index, which picks its GPU when there are several); ``proxy_kind``
    overrides the study's."""
    device = resolve_device(study.torch_device, worker)
    configure(device, study.tf32)
    in_memory = isinstance(splits.test, TensorSplit)
    batch = study.model.batch_size or (DEFAULT_BATCH if in_memory else FOLDER_BATCH)
    return Evaluator(
        model,
        splits,
        proxy_images=study.proxy_images,
        calib_images=study.proxy_images,
        proxy_kind=proxy_kind or study.proxy_kind,
        batch_size=batch,
        device=device,
    )


def build_context(study: Study, cache_dir: Path | None = None, worker: int = 0) -> SearchContext:
    """Load the study's model, data, device and search space (all validated here); ``cache_dir``
    keeps the proxy's precomputed terms between runs (:meth:`SearchContext.prepare_proxy`);
    ``worker``: the index of the search worker this context is for (its GPU)."""
    space = load_space(study.search_space)
    device = load_device(study.device)
    spec = study.model
    model: nn.Module | None = None
    splits: DataSplits | None = None
    evaluator: Evaluator | None = None
    fixed = study.fixed_quant
    loaded = load_study_model(study)
    if loaded is not None:
        model, splits = loaded
        workload = workload_from_model(model, DEFAULT_WORKLOAD_NAME if spec.is_default else spec.name)
    else:
        if fixed is not None:  # hardware-only: the architecture is enough
            kwargs = {**spec.kwargs, **({"img_size": spec.img_size} if spec.img_size else {})}
            workload = workload_from_name(spec.name, **kwargs)
        else:
            check_model_name(spec.name)  # an unknown model is named before the missing checkpoint
            where = spec.checkpoint or "model.checkpoint"
            raise UserError(
                f"study '{study.name}' needs your checkpoint ({where}) and an ImageFolder "
                f"(model.data in {study.source}); or search the hardware only with --hw-only W8A8"
            )
    layers = tuple(workload.layer_names())
    space.check_layers(layers)
    if model is not None and splits is not None and fixed is None:
        splits.test.prepare()  # an image folder's test split is decoded (and checked) once, here
        evaluator = study_evaluator(study, model, splits, worker=worker)
    if fixed is not None:
        unknown = sorted(set(fixed.layers) - set(layers))
        if unknown:
            raise UserError(f"--hw-only: unknown layer '{unknown[0]}' in the quant config")
    return SearchContext(
        study=study,
        space=space,
        device=device,
        workload=workload,
        layers=layers,
        evaluator=evaluator,
        model=model,
        cache_dir=cache_dir,
    )
