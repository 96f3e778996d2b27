"""A user's ViT on an ImageNet-layout folder: timm's eval transform exactly, streamed batches, the
uint8 cache, stratified subsets, unreadable files; and the whole tool end to end on such data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image

from codesign.cli.finetune import entry as finetune_entry
from codesign.cli.report import entry as report_entry
from codesign.cli.search import entry as search_entry
from codesign.data import FolderOptions, FolderSplit, load_image_folder, stratified_subset
from codesign.errors import UserError
from devtools.imagefolder import write_imagenet_folder
from hwmodel.target.timm_compat import import_timm

timm = import_timm()

CLASSES = 4
ARCH = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture(autouse=True)
def image_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CODESIGN_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagenet_folder(tmp_path_factory.mktemp("imagenet"), CLASSES, 12, 6)


def _model(num_classes: int = CLASSES) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, **ARCH).eval()


def _timm_reference(split: FolderSplit, model: torch.nn.Module, overrides: dict[str, object]) -> torch.Tensor:
    """timm's own eval transform, applied as timm's ImageDataset would (RGB), one file at a time."""
    cfg = {**timm.data.resolve_data_config({}, model=model), **overrides, "input_size": (3, 32, 32)}
    transform = timm.data.create_transform(**cfg, is_training=False)
    return torch.stack([transform(Image.open(f).convert("RGB")) for f in split.files])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"crop_pct": 1.0, "interpolation": "bilinear"},
        {"crop_mode": "squash", "crop_pct": 0.8, "mean": (0.1, 0.2, 0.3), "std": (0.3, 0.2, 0.1)},
        {"crop_mode": "border", "interpolation": "nearest"},
    ],
)
def test_images_equal_timms_eval_transform(folder: Path, overrides: dict[str, object]) -> None:
    model = _model()
    splits = load_image_folder(folder, model, FolderOptions(transform=overrides))
    assert isinstance(splits.test, FolderSplit)
    want = _timm_reference(splits.test, model, overrides)
    for batch in (5, 64):  # the first pass builds the cache, the second reads it
        got = torch.cat([x for x, _ in splits.test.batches(batch)])
        assert got.shape == want.shape and float((got - want).abs().max()) == 0.0
    assert torch.equal(splits.test.head(3), want[:3])
    assert splits.test.labels.tolist() == sorted(splits.test.labels.tolist())  # natural-key order


def test_calibration_images_equal_timms_eval_transform(folder: Path) -> None:
    model = _model()
    splits = load_image_folder(folder, model, FolderOptions(calib_images=8))
    train = FolderSplit(
        [str(p) for c in sorted((folder / "train").iterdir()) for p in sorted(c.iterdir())],
        np.zeros(CLASSES * 12, dtype=np.int64),
        splits.train.transform,  # type: ignore[attr-defined]
    )
    every = {f: x for f, x in zip(train.files, _timm_reference(train, model, {}), strict=True)}
    calib_files = sorted(set(every) - set(splits.train.files))  # type: ignore[attr-defined]
    assert len(calib_files) == 8 and splits.calib_x.shape == (8, 3, 32, 32)
    for x in splits.calib_x:
        assert any(torch.equal(x, every[f]) for f in calib_files)
    assert torch.bincount(splits.calib_y, minlength=CLASSES).tolist() == [2] * CLASSES


def test_stratified_subsets_are_balanced_and_seeded() -> None:
    labels = np.repeat(np.arange(10), [50, 3, 20, 20, 20, 20, 20, 20, 20, 7])
    idx = stratified_subset(labels, 40, seed=1)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 40 and counts.min() >= 3 and counts.max() <= 5
    assert np.array_equal(idx, stratified_subset(labels, 40, seed=1))
    assert not np.array_equal(idx, stratified_subset(labels, 40, seed=2))
    assert np.array_equal(stratified_subset(labels, 500, seed=0), np.arange(len(labels)))


def test_test_subset_and_sizes(folder: Path) -> None:
    splits = load_image_folder(folder, _model(), FolderOptions(test_images=8, calib_images=4))
    assert len(splits.test) == 8 and torch.bincount(splits.test.labels).tolist() == [2] * CLASSES
    assert splits.calib_x.shape[0] == 4 and len(splits.train) == CLASSES * 12 - 4
    default = load_image_folder(folder, _model())
    assert len(default.test) == CLASSES * 6 and default.calib_x.shape[0] == 5  # 10 % of 48


def test_second_pass_reads_the_cache_without_decoding(
    folder: Path, image_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = load_image_folder(folder, _model())
    first = torch.cat([x for x, _ in splits.test.batches(7)])
    (cached,) = (image_cache / "images").glob("*.u8")
    assert cached.stat().st_size == len(splits.test) * 3 * 32 * 32

    def no_decoding(*_args: object, **_kw: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(FolderSplit, "_decode_uint8", no_decoding)
    again = load_image_folder(folder, _model())
    assert torch.equal(torch.cat([x for x, _ in again.test.batches(100)]), first)


def test_unwritable_cache_decodes_each_pass(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CODESIGN_CACHE", str(blocker))
    splits = load_image_folder(folder, _model())
    want = _timm_reference(splits.test, _model(), {})  # type: ignore[arg-type]
    assert torch.equal(torch.cat([x for x, _ in splits.test.batches(4)]), want)


def test_a_corrupt_file_is_named_in_one_line(tmp_path: Path) -> None:
    bad = write_imagenet_folder(tmp_path / "data", 2, 4, 3, corrupt=True)
    splits = load_image_folder(tmp_path / "data", _model(2), FolderOptions(workers=2))
    with pytest.raises(UserError) as exc:
        splits.test.prepare()
    assert str(exc.value).startswith(f"{bad}: not a readable image") and "\n" not in str(exc.value)


def _study(tmp_path: Path, data: Path, checkpoint: Path, name: str = "mini_imagenet") -> Path:
    repo = Path(__file__).resolve().parents[1]
    study = tmp_path / f"{name}.yaml"
    study.write_text(
        f"name: {name}\n"
        "model:\n"
        "  name: vit_tiny_patch16_224\n"
        f"  checkpoint: {checkpoint}\n"
        f"  data: {data}\n"
        "  img_size: 32\n"
        "  kwargs: {patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}\n"
        "  calib_images: 8\n"
        "  data_workers: 2\n"
        "  batch_size: 16\n"
        "  transform: {crop_pct: 0.875, interpolation: bilinear}\n"
        "device: pynq_z2\n"
        f"search_space: {repo / 'search_spaces' / 'default.yaml'}\n"
        "fps: 1\n"
        "trials: 10\n"
        "torch_device: auto\n"
        "proxy: {kind: kl, images: 8}\n"
    )
    return study


@pytest.mark.slow
def test_search_report_finetune_qonnx_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_imagenet_folder(tmp_path / "data", CLASSES, 10, 5)
    ckpt = tmp_path / "vit.pt"
    torch.save(_model().state_dict(), ckpt)
    study = _study(tmp_path, data, ckpt)
    out = tmp_path / "runs"
    assert search_entry(["--study", str(study), "--out", str(out), "--quiet", "--json"]) == 0
    run = out / "mini_imagenet"
    info = json.loads((run / "summary.json").read_text())
    assert info["test_images"] == CLASSES * 5 and info["real_accuracy"]
    for trial, (lo, hi) in info["real_accuracy_ci95"].items():
        assert lo <= info["real_accuracy"][trial] <= hi
    header = (run / "pareto.csv").read_text().splitlines()[0]
    assert "top1_ci_low" in header and "top1_ci_high" in header
    assert "95 % CI" in (run / "pareto.html").read_text()
    trial = info["pareto_trials"][0]
    capsys.readouterr()
    assert report_entry([str(run)]) == 0
    assert "95 % CI" in capsys.readouterr().out
    assert report_entry([str(run), "--trial", str(trial), "--qonnx", "--images", "2", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["images"] == 2 and check["argmax_agreement_pct"] == 100.0
    assert finetune_entry([str(run), "--trial", str(trial), "--steps", "3", "--batch", "8", "--json"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["steps"] == 3 and tuned["train_images"] == CLASSES * 10 - 8
    # a corrupt file later: one line naming it, exit 2, the study as it was
    bad = data / "val" / "n00000001" / "zz_broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    capsys.readouterr()
    code = search_entry(["--study", str(study), "--out", str(out), "--quiet", "--trials", "12"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(bad) in err[0]
    stored = optuna.load_study(study_name="mini_imagenet", storage=f"sqlite:///{run / 'study.db'}")
    assert len(stored.trials) == info["trials"]
