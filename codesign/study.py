"""Studies (``studies/*.yaml``): model + data + device + search space + objectives +
constraints + sampler + seed + trial count, validated into a frozen :class:`Study`.

Relative paths in a study (search space, device YAML, checkpoint, data folder) are relative to
the folder of the study file; a data entry may also name a registered dataset (``mnist``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codesign.data import CROP_MODES, INTERPOLATIONS, TRANSFORM_KEYS, FolderOptions, registered_datasets
from codesign.errors import UserError
from codesign.integer_top1 import DEFAULT_INTEGER_IMAGES
from codesign.objectives import OBJECTIVES
from codesign.proxy import PROXY_KINDS
from codesign.quant import QuantConfig
from codesign.torch_device import check_device_spec
from codesign.yamlio import check_keys, read_yaml_mapping
from hwmodel.model.evaluation import UtilisationCaps

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STUDY = REPO_ROOT / "studies" / "default.yaml"
SAMPLERS = ("tpe", "nsga2", "random")
STUDY_KEYS = (
    "name",
    "model",
    "device",
    "search_space",
    "objectives",
    "fps",
    "utilisation",
    "sampler",
    "seed",
    "trials",
    "proxy",
    "torch_device",
    "tf32",
    "integer_images",
)
MODEL_KEYS = (
    "name",
    "checkpoint",
    "data",
    "img_size",
    "kwargs",
    "transform",
    "calib_images",
    "test_images",
    "data_workers",
    "batch_size",
)


@dataclass(frozen=True)
class ModelSpec:
    """``default`` (the shipped MNIST ViT) or a timm name with a checkpoint and data."""

    name: str
    checkpoint: Path | None = None
    data: str | None = None
    img_size: int | None = None
    #: further ``timm.create_model`` arguments (``embed_dim``, ``depth``, ``num_heads``, …)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: how an image folder becomes splits (transform overrides, subset sizes, decode workers)
    folder: FolderOptions = field(default_factory=FolderOptions)
    #: test images per forward pass of the real evaluation (None: the evaluator's default)
    batch_size: int | None = None

    @property
    def is_default(self) -> bool:
        return self.name == "default"


@dataclass(frozen=True)
class Study:
    name: str
    model: ModelSpec
    device: str
    search_space: Path
    objectives: tuple[str, ...]
    fps: float | None
    caps: UtilisationCaps
    sampler: str
    seed: int
    trials: int
    proxy_kind: str
    proxy_images: int
    source: Path
    #: where torch runs (``auto | cpu | cuda | cuda:N``, resolved by :mod:`codesign.torch_device`)
    torch_device: str = "auto"
    #: TF32 matmuls on CUDA (off: evaluation equals the CPU's to float32 rounding)
    tf32: bool = False
    #: test images of the export's integer-only check of each design (``quant.json``'s
    #: ``accuracy.integer``; 0: none)
    integer_images: int = DEFAULT_INTEGER_IMAGES
    #: Hardware-only search: this quantization is fixed, only the accelerator is searched
    #: (``--hw-only``; never set by a study file).
    fixed_quant: QuantConfig | None = None

    def with_overrides(self, **changes: Any) -> Study:
        """A copy with the given fields replaced; ``None`` values leave a field as it is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_model_name(self, name: str) -> Study:
        """The study with another model by name: ``default`` (the shipped ViT) or a timm name;
        the study's own model (checkpoint and data included) when ``name`` is that model."""
        if name == "default":
            return replace(self, model=ModelSpec("default"))
        if name != self.model.name:
            return replace(self, model=ModelSpec(name))
        return self


def _positive(raw: dict[str, Any], key: str, where: str, kind: type, default: Any) -> Any:
    v = raw.get(key, default)
    if v is None:
        return None
    ok = isinstance(v, int) if kind is int else isinstance(v, int | float)
    if isinstance(v, bool) or not ok or v <= 0:
        raise UserError(f"{where}: key '{key}' must be a positive {kind.__name__}, got {v!r}")
    return kind(v)


def _model(raw: Any, where: str, base: Path) -> ModelSpec:
    if raw is None or raw == "default":
        return ModelSpec("default")
    if isinstance(raw, str):
        return ModelSpec(raw)
    m = check_keys(raw, MODEL_KEYS, f"{where}: model", required=("name",))
    ckpt = m.get("checkpoint")
    data = m.get("data")
    img = m.get("img_size")
    if img is not None and (isinstance(img, bool) or not isinstance(img, int) or img <= 0):
        raise UserError(f"{where}: model.img_size must be a positive integer, got {img!r}")
    data_text = None if data is None else str(data)
    if data_text is not None and data_text not in registered_datasets():
        data_text = str(_relative_to(base, data_text))
    workers = m.get("data_workers", 0)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserError(f"{where}: model.data_workers must be an integer ≥ 0, got {workers!r}")
    folder = FolderOptions(
        calib_images=_positive(m, "calib_images", f"{where}: model", int, None),
        test_images=_positive(m, "test_images", f"{where}: model", int, None),
        workers=workers,
        transform=_transform(m.get("transform", {}), f"{where}: model.transform"),
    )
    kwargs = m.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float | str | bool) for k, v in kwargs.items()
    ):
        raise UserError(f"{where}: model.kwargs must map timm.create_model arguments to numbers or names")
    return ModelSpec(
        name=str(m["name"]),
        checkpoint=None if ckpt is None else _relative_to(base, str(ckpt)),
        data=data_text,
        img_size=img,
        kwargs=dict(kwargs),
        folder=folder,
        batch_size=_positive(m, "batch_size", f"{where}: model", int, None),
    )


def _transform(raw: Any, where: str) -> dict[str, Any]:
    """``model.transform``: overrides of the model's timm data config, checked one by one."""
    t = check_keys(raw, TRANSFORM_KEYS, where)
    out: dict[str, Any] = {}
    if "crop_pct" in t:
        v = t["crop_pct"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise UserError(f"{where}: crop_pct must be a fraction in (0, 1], got {v!r}")
        out["crop_pct"] = float(v)
    for key, allowed in (("crop_mode", CROP_MODES), ("interpolation", INTERPOLATIONS)):
        if key in t:
            if t[key] not in allowed:
                raise UserError(f"{where}: {key} {t[key]!r} unknown (allowed: {', '.join(allowed)})")
            out[key] = str(t[key])
    for key in ("mean", "std"):
        if key in t:
            v = t[key]
            ok = (
                isinstance(v, list)
                and v
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            )
            if not ok or (key == "std" and min(v) <= 0):
                raise UserError(
                    f"{where}: {key} must be a list of numbers (one per input channel), got {v!r}"
                )
            out[key] = tuple(float(x) for x in v)
    return out


def _relative_to(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def load_study(path: str | Path) -> Study:
    """Read and validate a study YAML file (relative paths resolve against its folder)."""
    p = Path(path)
    raw = read_yaml_mapping(p, "study")
    where = str(p)
    s = check_keys(raw, STUDY_KEYS, where, required=("name", "device", "search_space"))
    name = s["name"]
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise UserError(f"{where}: key 'name' must be a plain name (letters, digits, _ or -), got {name!r}")
    objectives = s.get("objectives", ["accuracy", "fps", "resources"])
    if not isinstance(objectives, list) or not objectives:
        raise UserError(f"{where}: key 'objectives' must be a non-empty list")
    for obj in objectives:
        if obj not in OBJECTIVES:
            raise UserError(f"{where}: objective {obj!r} unknown (allowed: {', '.join(OBJECTIVES)})")
    if len(set(objectives)) != len(objectives):
        raise UserError(f"{where}: key 'objectives' lists an objective twice")
    caps_raw = check_keys(s.get("utilisation", {}), ("lut", "ff", "dsp", "bram36"), f"{where}: utilisation")
    for key, v in caps_raw.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise UserError(f"{where}: utilisation.{key} must be a fraction in (0, 1], got {v!r}")
    sampler = s.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise UserError(f"{where}: sampler {sampler!r} unknown (allowed: {', '.join(SAMPLERS)})")
    seed = s.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{where}: key 'seed' must be an integer, got {seed!r}")
    proxy = check_keys(s.get("proxy", {}), ("kind", "images"), f"{where}: proxy")
    kind = proxy.get("kind", "auto")
    if kind not in PROXY_KINDS:
        raise UserError(f"{where}: proxy.kind {kind!r} unknown (allowed: {', '.join(PROXY_KINDS)})")
    torch_device = check_device_spec(str(s.get("torch_device", "auto")), where)
    tf32 = s.get("tf32", False)
    if not isinstance(tf32, bool):
        raise UserError(f"{where}: key 'tf32' must be true or false, got {tf32!r}")
    integer_images = s.get("integer_images", DEFAULT_INTEGER_IMAGES)
    if isinstance(integer_images, bool) or not isinstance(integer_images, int) or integer_images < 0:
        raise UserError(f"{where}: key 'integer_images' must be an integer ≥ 0, got {integer_images!r}")
    space = _relative_to(p.parent, str(s["search_space"]))
    if not isinstance(s["device"], str):
        raise UserError(f"{where}: key 'device' must be a device name or path")
    device = s["device"]
    if device.endswith((".yaml", ".yml")):
        device = str(_relative_to(p.parent, device))
    return Study(
        name=name,
        model=_model(s.get("model"), where, p.parent),
        device=device,
        search_space=space,
        objectives=tuple(objectives),
        fps=_positive(s, "fps", where, float, None),
        caps=UtilisationCaps(**{k: float(v) for k, v in caps_raw.items()}),
        sampler=sampler,
        seed=seed,
        trials=_positive(s, "trials", where, int, 100),
        proxy_kind=kind,
        proxy_images=_positive(proxy, "images", f"{where}: proxy", int, 256),
        source=p,
        torch_device=torch_device,
        tf32=tf32,
        integer_images=integer_images,
    )
