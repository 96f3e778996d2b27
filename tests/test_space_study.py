"""Search-space and study loaders: decoding trials into candidates, and one-line errors."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from codesign.errors import UserError
from codesign.integer_top1 import DEFAULT_INTEGER_IMAGES
from codesign.quant import QuantConfig
from codesign.space import load_space
from codesign.study import DEFAULT_STUDY, load_study
from hwmodel.model.evaluation import evaluate
from hwmodel.target.device import load_device
from hwmodel.target.workload import Workload

ROOT = Path(__file__).parents[1]
DEFAULT_SPACE = ROOT / "search_spaces" / "default.yaml"


class RandomTrial:
    """Draws like ``optuna.Trial.suggest_categorical`` (a seeded stand-in for the sampler)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.params[name] = self.rng.choice(list(choices))
        return self.params[name]


@pytest.mark.parametrize("granularity", ["model", "block", "layer"])
def test_decode_is_consistent_between_quant_and_hardware(
    mnist_workload: Workload, granularity: str, tmp_path: Path
) -> None:
    text = DEFAULT_SPACE.read_text().replace("granularity: block", f"granularity: {granularity}")
    path = tmp_path / "space.yaml"
    path.write_text(text)
    space = load_space(path)
    layers = mnist_workload.layer_names()
    dev = load_device("pynq_z2")
    for seed in range(25):
        trial = RandomTrial(seed)
        params = space.suggest(trial, layers)
        cand = space.decode(params, layers)
        accel = cand.accel
        assert 0 <= accel.pot_cols < accel.cols or accel.pot_cols == 0
        # PoT columns exist exactly when some layer puts channels on them
        assert (accel.pot_cols > 0) == any(accel.for_layer(n).pot_ratio > 0 for n in layers)
        for name in layers:
            lq, hw = cand.quant.for_layer(name), accel.for_layer(name)
            assert (lq.weight_bits, lq.act_bits) == (hw.weight_bits, hw.act_bits)
            assert hw.pot_ratio == (lq.pot_ratio if accel.pot_cols else 0.0)
            if name.endswith((".qk", ".sv")):
                assert lq.pot_ratio == 0 and lq.weight_bits == lq.act_bits
        assert cand.quant.for_layer("head").to_string() == "W8A8"
        evaluate(mnist_workload, accel, dev)  # every decoded design is a valid model input
        assert cand.key() == space.decode(dict(params), layers).key()
    params["hw.pot_cols_share"] = max(space.hardware.pot_cols_share)  # a share > 0, nothing on PoT
    hw_only = space.decode(params, layers, QuantConfig.parse("W8A8"))
    assert hw_only.accel.pot_cols == 0 and hw_only.accel.cols == accel.cols
    n_groups = len(space.groups(layers))
    assert n_groups == {"model": 1, "block": 6, "layer": 6 * 6}[granularity]


def test_default_study_loads() -> None:
    study = load_study(DEFAULT_STUDY)
    assert study.name == "default" and study.model.is_default and study.fps == 30
    assert study.integer_images == DEFAULT_INTEGER_IMAGES
    assert study.objectives == ("accuracy", "fps", "resources")
    assert study.search_space.is_file()


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("sampler: tpe", "sampler: cmaes"), "sampler 'cmaes' unknown"),
        (("objectives: [accuracy, fps, resources]", "objectives: [accuracy, power]"), "objective 'power'"),
        (("fps: 30", "fps: -3"), "'fps' must be a positive"),
        (("trials: 200", "trials: 0"), "'trials' must be a positive"),
        (("seed: 0", "seeds: 0"), "unknown key 'seeds'"),
        (("name: default", "name: ../evil"), "key 'name'"),
        (("utilisation: {lut: 0.80", "utilisation: {lut: 1.5"), "utilisation.lut"),
        (("proxy: {kind: linkl", "proxy: {kind: hessian"), "proxy.kind 'hessian'"),
        (("device: pynq_z2", "device: [pynq"), "not valid YAML"),
        (("seed: 0", "seed: 0\ninteger_images: -1"), "'integer_images' must be an integer ≥ 0"),
        (("seed: 0", "seed: 0\ninteger_images: yes"), "'integer_images' must be an integer ≥ 0"),
    ],
)
def test_bad_study_is_one_line(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    text = DEFAULT_STUDY.read_text().replace("../search_spaces", str(ROOT / "search_spaces"))
    assert edit[0] in text
    path = tmp_path / "study.yaml"
    path.write_text(text.replace(*edit))
    _assert_one_line_error(path, needle)


def _assert_one_line_error(path: Path, needle: str) -> None:
    with pytest.raises(UserError) as err:
        load_study(path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("granularity: block", "granularity: head"), "granularity: 'head' not allowed"),
        (("weight_bits: [2, 3, 4, 5, 6, 8]", "weight_bits: [1, 4]"), "weight_bits: 1 not allowed"),
        (("rows: [2, 4, 8, 16]", "rows: []"), "rows: empty list"),
        (("  tk_folds: [1", "  tk_fold: [1"), "unknown key 'tk_fold'"),
        (("packing: [1, 2, 4]", "packing: [3]"), "packing: 3 not allowed"),
        (("head: W8A8", "head: Q8"), "fixed_layers.head"),
        (
            ("nonlinear: float", "nonlinear: fixed"),
            "quant.nonlinear: 'fixed' not allowed (allowed: float, int)",
        ),
    ],
)
def test_bad_space_is_one_line(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    text = DEFAULT_SPACE.read_text()
    assert edit[0] in text
    path = tmp_path / "space.yaml"
    path.write_text(text.replace(*edit))
    with pytest.raises(UserError) as err:
        load_space(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_unknown_fixed_layer_is_reported(tmp_path: Path, mnist_workload: Workload) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(DEFAULT_SPACE.read_text().replace("head: W8A8", "blocks.9.mlp.fc1: W8A8"))
    with pytest.raises(UserError, match=r"unknown layer 'blocks\.9\.mlp\.fc1'"):
        load_space(path).check_layers(mnist_workload.layer_names())


def test_missing_user_checkpoint_is_one_line(tmp_path: Path) -> None:
    from codesign.context import build_context

    study = load_study(ROOT / "studies" / "deit_small_zcu102.yaml")
    with pytest.raises(UserError) as err:
        build_context(study)
    msg = str(err.value)
    assert "needs your checkpoint" in msg and "--hw-only" in msg and "\n" not in msg


USER_MODEL = (
    "model:\n  name: deit_small_patch16_224\n  checkpoint: ck.pt\n  data: imagenet\n"
    "  transform: {crop_pct: 0.875, interpolation: bicubic, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}\n"
    "  calib_images: 500\n  test_images: 10000\n  data_workers: 4\n  batch_size: 256\n"
    "  kwargs: {drop_path_rate: 0.0}\n"
    "torch_device: cuda:1\ntf32: true\n"
)


def _user_study(tmp_path: Path, model_text: str) -> Path:
    text = DEFAULT_STUDY.read_text().replace("../search_spaces", str(ROOT / "search_spaces"))
    path = tmp_path / "study.yaml"
    path.write_text(text.replace("model: default ", model_text + "#"))
    return path


def test_image_folder_keys_are_read(tmp_path: Path) -> None:
    study = load_study(_user_study(tmp_path, USER_MODEL))
    m = study.model
    assert m.folder.calib_images == 500 and m.folder.test_images == 10000 and m.folder.workers == 4
    assert m.folder.transform == {
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    }
    assert m.batch_size == 256 and m.kwargs == {"drop_path_rate": 0.0}
    assert study.torch_device == "cuda:1" and study.tf32 is True
    assert load_study(DEFAULT_STUDY).torch_device == "auto" and not load_study(DEFAULT_STUDY).tf32


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("crop_pct: 0.875", "crop_pct: 1.5"), "crop_pct must be a fraction"),
        (
            ("interpolation: bicubic", "interpolation: cubic"),
            "interpolation 'cubic' unknown (allowed: bilinear",
        ),
        (("crop_pct: 0.875", "crop_size: 0.875"), "unknown key 'crop_size' (allowed: crop_pct"),
        (("std: [0.5, 0.5, 0.5]", "std: [0.5, 0, 0.5]"), "std must be a list of numbers"),
        (("calib_images: 500", "calib_images: 0"), "'calib_images' must be a positive"),
        (("test_images: 10000", "test_images: many"), "'test_images' must be a positive"),
        (("data_workers: 4", "data_workers: -1"), "model.data_workers must be an integer"),
        (("batch_size: 256", "batch_sizes: 256"), "unknown key 'batch_sizes'"),
        (("torch_device: cuda:1", "torch_device: tpu"), "torch_device 'tpu' unknown (allowed: auto, cpu"),
        (("torch_device: cuda:1", "torch_device: cpu:0"), "torch_device 'cpu:0' unknown"),
        (("tf32: true", "tf32: maybe"), "'tf32' must be true or false"),
        (("kwargs: {drop_path_rate: 0.0}", "kwargs: [1]"), "model.kwargs must map"),
    ],
)
def test_bad_image_folder_keys_are_one_line(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    assert edit[0] in USER_MODEL
    _assert_one_line_error(_user_study(tmp_path, USER_MODEL.replace(*edit)), needle)
