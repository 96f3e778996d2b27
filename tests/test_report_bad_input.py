"""Bad or damaged run folders given to ``python -m codesign.report``, and staging folders a killed
export leaves: one line, exit 2, nothing in the run folder changed; stale staging removed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runfolder import tree_hash

from codesign.atomic import remove_stale_staging, replace_dir_atomic
from codesign.cli.report import entry as report_entry
from codesign.cli.search import entry as search_entry
from codesign.study import REPO_ROOT
from hwmodel.base.cli import run_main
from hwmodel.model.document import load_config

STUDY = REPO_ROOT / "studies" / "deit_small_zcu102.yaml"
NAME = "deit_small_zcu102"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    argv = ["--hw-only", "W8A8", "--study", str(STUDY), "--fps", "5", "--trials", "6"]
    assert search_entry([*argv, "--out", str(out), "--quiet", "--json", "--no-rtl"]) == 0
    return out / NAME


def _truncate_summary(run: Path) -> None:
    text = (run / "summary.json").read_text()
    (run / "summary.json").write_text(text[: len(text) // 2])


def _summary_not_an_object(run: Path) -> None:
    (run / "summary.json").write_text("[1, 2, 3]\n")


def _garbage_storage_and_no_trials(run: Path) -> None:
    (run / "study.db").write_bytes(b"not a database\x00" * 64)
    header = (run / "trials.csv").read_text().splitlines()[0]
    (run / "trials.csv").write_text(header + "\n")


def _garbled_trials(run: Path) -> None:
    lines = (run / "trials.csv").read_text().splitlines()
    (run / "trials.csv").write_text("\n".join([lines[0], "x," * 30]) + "\n")


def _plot_not_writable(run: Path) -> None:
    # root ignores folder permissions: a folder where the plot goes fails the write the same way
    (run / "pareto.png").unlink()
    (run / "pareto.png").mkdir()


def _first_design(run: Path) -> int:
    return min(int(p.name) for p in (run / "designs").iterdir())


def _accelerator_truncated(run: Path) -> None:
    doc = run / "designs" / str(_first_design(run)) / "accelerator.json"
    doc.write_text(doc.read_text()[:100])


DAMAGE: list[tuple[str, Callable[[Path], None], list[str], str]] = [
    ("summary_truncated", _truncate_summary, [], "not valid JSON"),
    ("summary_not_an_object", _summary_not_an_object, [], "not a codesign.search summary"),
    ("storage_garbage_trials_header_only", _garbage_storage_and_no_trials, [], "has no trials"),
    ("trials_garbled", _garbled_trials, [], "is not a row codesign.search writes"),
    ("plots_not_writable", _plot_not_writable, [], "cannot write the plots"),
    ("accelerator_truncated", _accelerator_truncated, ["--trial", "FIRST"], "not valid JSON"),
]


@pytest.mark.parametrize(("name", "damage", "extra", "expect"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_run_folder_is_one_line(
    name: str,
    damage: Callable[[Path], None],
    extra: list[str],
    expect: str,
    finished_run: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / NAME
    shutil.copytree(finished_run, run)
    damage(run)
    if extra == ["--trial", "FIRST"]:
        extra = ["--trial", str(_first_design(run))]
    before = tree_hash(run)
    capfd.readouterr()
    rc = report_entry([str(run), *extra])
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("codesign.report: error: "), captured.err
    assert expect in lines[0], lines[0]
    assert tree_hash(run) == before, "a failed report changed the run folder"


def test_report_of_an_intact_run_succeeds(
    finished_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / NAME
    shutil.copytree(finished_run, run)
    assert report_entry([str(run), "--json"]) == 0
    assert '"hypervolume"' in capfd.readouterr().out


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_stale_staging_of_a_killed_export_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "designs"
    host = socket.gethostname().replace(".", "_")
    dead = tmp_path / f".designs.new.{host}-{_dead_pid()}.abc123"
    live = tmp_path / f".designs.new.{host}-{os.getpid()}.def456"
    other_host = tmp_path / f".designs.old.elsewhere-{_dead_pid()}.ghi789"
    for d in (dead, live, other_host):
        (d / "1").mkdir(parents=True)
    replace_dir_atomic(target, lambda tmp: (tmp / "2").mkdir())
    assert not dead.exists()
    assert live.exists() and other_host.exists()  # a running export and another machine's
    assert sorted(p.name for p in target.iterdir()) == ["2"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        [live.name, other_host.name]
    )
    assert remove_stale_staging(target) == []


def test_summary_records_each_phase(finished_run: Path) -> None:
    """summary.json: wall time of set-up, trial loop, re-scoring and exports, which add up."""
    info = json.loads((finished_run / "summary.json").read_text())
    phases = info["phase_s"]
    assert list(phases) == ["setup", "trials", "rescore", "exports"]
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) <= info["wall_s"] + 0.01
    assert phases["trials"] == pytest.approx(info["search_s"], abs=1e-3)


def _design_doc(run: Path) -> Path:
    return run / "designs" / str(_first_design(run)) / "accelerator.json"


def _set(*keys: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value

    return change


BAD_DESIGN_DOCS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # (what is wrong, the change, the failing key the line names)
    ("rows_not_integer", _set("config", "array", "rows", value="x"), "key 'config.array.rows'"),
    ("packing_3", _set("config", "array", "packing", value=3), "key 'config.array.packing'"),
    ("unknown_array_key", _set("config", "array", "depth", value=2), "key 'config.array.depth'"),
    ("dsp_type", _set("device", "dsp_type", value="DSP58"), "key 'device.dsp_type'"),
    ("no_predicted", lambda doc: doc.pop("predicted"), "key 'predicted'"),
]


@pytest.mark.parametrize(("name", "change", "key"), BAD_DESIGN_DOCS, ids=[b[0] for b in BAD_DESIGN_DOCS])
def test_hwmodel_report_names_the_failing_key(
    name: str,
    change: Callable[[dict[str, Any]], None],
    key: str,
    finished_run: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from hwmodel.report import main as hw_report

    path = tmp_path / "accelerator.json"
    doc = json.loads(_design_doc(finished_run).read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    capfd.readouterr()
    rc = run_main(hw_report, ["--config", str(path)], prog="hwmodel.report")
    lines = capfd.readouterr().err.splitlines()
    assert rc == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"hwmodel.report: error: {path}: {key}"), lines[0]


#: keys only the schema checks (the config parser never reads them)
SCHEMA_ONLY = BAD_DESIGN_DOCS[-2:]


@pytest.mark.parametrize(("name", "change", "key"), SCHEMA_ONLY, ids=[b[0] for b in SCHEMA_ONLY])
def test_config_load_validates_an_exported_document(
    name: str, change: Callable[[dict[str, Any]], None], key: str, finished_run: Path, tmp_path: Path
) -> None:
    """The Python API reads an accelerator.json as the command does: schema first."""
    from hwmodel.arch.config import AcceleratorConfig
    from hwmodel.base.errors import UserError

    path = tmp_path / "accelerator.json"
    doc = json.loads(_design_doc(finished_run).read_text())
    assert load_config(_design_doc(finished_run)) == AcceleratorConfig.from_dict(doc["config"])
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=rf"^{path}: {key}"):
        load_config(path)


def test_hwmodel_report_reproduces_a_timm_design(
    finished_run: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A DeiT-S design priced from its file alone (model, device and caps as recorded)."""
    from hwmodel.report import main as hw_report

    capfd.readouterr()
    assert hw_report(["--config", str(_design_doc(finished_run))]) == 0
    out = capfd.readouterr().out
    assert "model deit_small_patch16_224 on zcu102" in out
    assert "recorded        reproduced exactly" in out
