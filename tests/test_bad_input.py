"""Bad input to ``python -m codesign.search``: one line naming the problem, exit 2, nothing changed.

A module fixture runs a small hardware-only study first (SQLite storage + exports in the run
folder); every bad command then points at the same ``--out`` and the test compares a hash of the
whole output tree (storage included) before and after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from runfolder import tree_hash

from codesign.cli.search import entry
from codesign.study import REPO_ROOT
from devtools.pgcluster import free_port

STUDY = REPO_ROOT / "studies" / "deit_small_zcu102.yaml"
SPACE = REPO_ROOT / "search_spaces" / "deit_zcu102.yaml"
NAME = "deit_small_zcu102"
CHECKPOINT = REPO_ROOT / "codesign" / "assets" / "default_vit_mnist.pt"


def base_argv(out: Path, study: Path = STUDY) -> list[str]:
    model = ["--hw-only", "W8A8", "--model", "deit_small_patch16_224", "--study", str(study)]
    return [*model, "--fps", "5", "--trials", "10", "--out", str(out), "--quiet", "--json", "--no-rtl"]


def study_yaml(folder: Path, name: str = NAME, space: Path = SPACE, extra: str = "", model: str = "") -> Path:
    """A copy of the DeiT-S study with absolute paths (and optional changes)."""
    text = STUDY.read_text().replace("../search_spaces/deit_zcu102.yaml", str(space))
    text = text.replace(f"name: {NAME}", f"name: {name}")
    if model:
        start = text.index("model:")
        end = text.index("device:")
        text = text[:start] + model + text[end:]
    path = folder / f"study_{abs(hash((name, str(space), extra, model)))}.yaml"
    path.write_text(text + extra)
    return path


def space_yaml(folder: Path, old: str, new: str, tag: str) -> Path:
    text = SPACE.read_text()
    assert old in text
    path = folder / f"space_{tag}.yaml"
    path.write_text(text.replace(old, new))
    return path


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (out, scratch folder) -> argv
    expect: str  # a fragment the one-line message must contain


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    i = argv.index(flag)
    return [*argv[: i + 1], value, *argv[i + 2 :]]


def _drop(argv: list[str], flag: str, with_value: bool = True) -> list[str]:
    i = argv.index(flag)
    return argv[:i] + argv[i + (2 if with_value else 1) :]


def _file_as_out(out: Path, tmp: Path) -> list[str]:
    blocker = tmp / "not_a_folder"
    blocker.write_text("a file where the output folder should be\n")
    return _replace(base_argv(out), "--out", str(blocker))


CASES = [
    Case(
        "malformed_yaml",
        lambda out, tmp: _replace(
            base_argv(out), "--study", str(_write(tmp / "bad.yaml", "name: x\nmodel: [a,\n"))
        ),
        "not valid YAML",
    ),
    Case(
        "unknown_study_key",
        lambda out, tmp: base_argv(out, study_yaml(tmp, extra="colour: blue\n")),
        "unknown key 'colour'",
    ),
    Case(
        "unknown_space_key",
        lambda out, tmp: base_argv(
            out, study_yaml(tmp, space=space_yaml(tmp, "hardware:\n", "hardware:\n  wires: [1]\n", "key"))
        ),
        "unknown key 'wires'",
    ),
    Case("unknown_device", lambda out, tmp: [*base_argv(out), "--device", "zcu999"], "zcu999"),
    Case("study_is_a_folder", lambda out, tmp: _replace(base_argv(out), "--study", str(tmp)), "is a folder"),
    Case(
        "study_not_utf8",
        lambda out, tmp: _replace(base_argv(out), "--study", str(_write_bytes(tmp / "s.yaml", b"\xff\xfe"))),
        "not a UTF-8 text file",
    ),
    Case(
        "unknown_model_without_checkpoint",
        lambda out, tmp: _drop(_replace(base_argv(out), "--model", "nosuch_vit"), "--hw-only"),
        "unknown timm model 'nosuch_vit'",
    ),
    Case(
        "unknown_model",
        lambda out, tmp: _replace(base_argv(out), "--model", "vit_no_such_model"),
        "vit_no_such_model",
    ),
    Case(
        "unknown_layer",
        lambda out, tmp: base_argv(
            out,
            study_yaml(
                tmp,
                space=space_yaml(
                    tmp, "    head: W8A8\n", "    head: W8A8\n    blocks.99.mlp.fc9: W4A8\n", "layer"
                ),
            ),
        ),
        "blocks.99.mlp.fc9",
    ),
    Case("fps_zero", lambda out, tmp: _replace(base_argv(out), "--fps", "0"), "--fps"),
    Case("fps_negative", lambda out, tmp: _replace(base_argv(out), "--fps", "-30"), "--fps"),
    Case("fps_not_a_number", lambda out, tmp: _replace(base_argv(out), "--fps", "fast"), "--fps"),
    Case("fps_nan", lambda out, tmp: _replace(base_argv(out), "--fps", "nan"), "--fps"),
    Case("trials_zero", lambda out, tmp: _replace(base_argv(out), "--trials", "0"), "--trials"),
    Case("trials_negative", lambda out, tmp: _replace(base_argv(out), "--trials", "-3"), "--trials"),
    Case("trials_not_integer", lambda out, tmp: _replace(base_argv(out), "--trials", "2.5"), "--trials"),
    Case(
        "integer_images_negative",
        lambda out, tmp: [*base_argv(out), "--integer-images", "-1"],
        "--integer-images",
    ),
    Case(
        "unreachable_postgresql",
        lambda out, tmp: [
            *base_argv(out),
            "--storage",
            f"postgresql://codesign@127.0.0.1:{free_port()}/study",
        ],
        "unreachable",
    ),
    Case(
        "unknown_storage_scheme",
        lambda out, tmp: [*base_argv(out), "--storage", "nosuchdb://host/study"],
        "nosuchdb://host/study",
    ),
    Case(
        "journal_folder_missing",
        lambda out, tmp: [*base_argv(out), "--storage", str(tmp / "missing" / "study.log")],
        "does not exist",
    ),
    Case("output_is_a_file", _file_as_out, "not writable"),
    Case(
        "different_search_space",
        lambda out, tmp: base_argv(
            out,
            study_yaml(tmp, space=space_yaml(tmp, "rows: [16, 24, 32, 48, 64]", "rows: [16, 32]", "rows")),
        ),
        "another search space",
    ),
    Case(
        "different_fps_target",
        lambda out, tmp: _replace(base_argv(out), "--fps", "7"),
        "FPS target",
    ),
    Case(
        "checkpoint_does_not_fit_model",
        lambda out, tmp: _drop(
            _drop(base_argv(out, study_yaml(tmp, model=_model_block())), "--model"), "--hw-only"
        ),
        "does not fit",
    ),
]


def _model_block() -> str:
    return f"model:\n  name: deit_tiny_patch16_224\n  checkpoint: {CHECKPOINT}\n  data: mnist\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert entry(base_argv(out)) == 0
    run_dir = out / NAME
    assert (run_dir / "study.db").is_file() and (run_dir / "designs").is_dir()
    return out


def call(argv: list[str]) -> int:
    try:
        return entry(argv)
    except SystemExit as exc:  # argparse errors
        return int(exc.code or 0)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, earlier_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    argv = case.argv(earlier_run, tmp_path)
    before = tree_hash(earlier_run)
    capfd.readouterr()
    rc = call(argv)
    captured = capfd.readouterr()
    assert rc == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("codesign.search: error: ") or lines[0].startswith("python -m codesign.search")
    assert case.expect in lines[0], lines[0]
    assert captured.out == ""
    assert tree_hash(earlier_run) == before, "a bad command changed the storage or the exports"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(
    earlier_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc = call(_replace(base_argv(earlier_run), "--out", str(locked)))
    finally:
        locked.chmod(0o700)
    err = capfd.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "not writable" in err, err
    assert not any(locked.iterdir())


SUBPROCESS_CASES = ["fps_not_a_number", "unreachable_postgresql", "different_search_space", "unknown_layer"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_real_process(name: str, earlier_run: Path, tmp_path: Path) -> None:
    """The real command: nothing else (warnings, tracebacks) reaches stderr."""
    case = next(c for c in CASES if c.name == name)
    before = tree_hash(earlier_run)
    proc = subprocess.run(
        [sys.executable, "-m", "codesign.search", *case.argv(earlier_run, tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and case.expect in proc.stderr, proc.stderr
    assert tree_hash(earlier_run) == before


LEAVES_NO_FOLDER = [
    (
        "unknown_space_key",
        lambda tmp: study_yaml(
            tmp, name="fresh", space=space_yaml(tmp, "hardware:\n", "hardware:\n  wires: [1]\n", "key")
        ),
        [],
    ),
    ("unknown_device", lambda tmp: study_yaml(tmp, name="fresh"), ["--device", "zcu999"]),
    (
        "no_checkpoint",
        lambda tmp: study_yaml(tmp, name="fresh"),
        ["--model", "deit_tiny_patch16_224"],
    ),
]


@pytest.mark.parametrize(("name", "study", "extra"), LEAVES_NO_FOLDER, ids=[c[0] for c in LEAVES_NO_FOLDER])
def test_failed_set_up_leaves_no_run_folder(
    name: str,
    study: Callable[[Path], Path],
    extra: list[str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A study, search-space, device or checkpoint error in a new run leaves no ``<out>/<study>/``
    (nor the ``--out`` folder it would have created)."""
    out = tmp_path / "runs" / "nested"
    argv = [*base_argv(out, study(tmp_path)), *extra]
    if name == "no_checkpoint":
        argv = _drop(argv, "--hw-only")
    rc = call(argv)
    err = capfd.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))
