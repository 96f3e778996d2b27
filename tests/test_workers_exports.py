"""Exports are atomic: an export that fails half-way leaves the previous files intact."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
from runfolder import tree_hash

from codesign.atomic import replace_dir_atomic, write_text_atomic, write_text_if_changed
from codesign.cli.search import entry
from codesign.context import build_context
from codesign.quant import QuantConfig
from codesign.results import analyse, export_designs, trial_rows
from codesign.search.storage import close_sqlite_storages, open_storage
from codesign.study import REPO_ROOT, load_study

STUDY = REPO_ROOT / "studies" / "deit_small_zcu102.yaml"
ARGS = ["--hw-only", "W8A8", "--model", "deit_small_patch16_224", "--study", str(STUDY), "--fps", "5"]


def test_failed_folder_build_keeps_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "designs"
    (target / "3").mkdir(parents=True)
    (target / "3" / "accelerator.json").write_text('{"old": true}\n')
    before = tree_hash(tmp_path)

    def half_way(tmp: Path) -> None:
        (tmp / "7").mkdir()
        (tmp / "7" / "accelerator.json").write_text('{"new": true}\n')
        raise RuntimeError("disk full half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        replace_dir_atomic(target, half_way)
    assert tree_hash(tmp_path) == before  # old folder intact, no temporary folder left

    replace_dir_atomic(target, lambda tmp: (tmp / "9").mkdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["designs"]
    assert [p.name for p in target.iterdir()] == ["9"]


def test_failed_file_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "pareto.csv"
    write_text_atomic(path, "trial\n1\n")

    def half_way(tmp: Path) -> None:
        tmp.write_text("trial\n")
        raise OSError("interrupted")

    from codesign.atomic import write_atomic

    with pytest.raises(OSError, match="interrupted"):
        write_atomic(path, half_way)
    assert path.read_text() == "trial\n1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pareto.csv"]


def test_same_text_is_not_rewritten(tmp_path: Path) -> None:
    """A table that already holds the same text (CSV lines end in \\r\\n) keeps its file."""
    path = tmp_path / "trials.csv"
    assert write_text_if_changed(path, "trial\r\n1\r\n")
    stamp = path.stat().st_mtime_ns
    assert not write_text_if_changed(path, "trial\r\n1\r\n")
    assert path.stat().st_mtime_ns == stamp
    assert write_text_if_changed(path, "trial\r\n2\r\n")
    assert path.read_bytes() == b"trial\r\n2\r\n"


def test_export_designs_failing_half_way_keeps_previous_designs(tmp_path: Path) -> None:
    """The real exporter on a real run: the second design cannot be decoded, the first was written."""
    assert entry([*ARGS, "--trials", "16", "--out", str(tmp_path), "--quiet", "--json", "--no-rtl"]) == 0
    run_dir = tmp_path / "deit_small_zcu102"
    before = tree_hash(run_dir)
    study = (
        load_study(STUDY)
        .with_model_name("deit_small_patch16_224")
        .with_overrides(fps=5.0, trials=16, fixed_quant=QuantConfig.uniform("W8A8"))
    )
    ctx = build_context(study)
    trials = optuna.load_study(
        study_name=study.name, storage=open_storage(f"sqlite:///{run_dir / 'study.db'}")
    ).get_trials()
    outcome = analyse(trial_rows(trials, len(ctx.objectives)), ctx.objectives)
    assert len(outcome.pareto) >= 2
    broken = dataclasses.replace(outcome.pareto[1], params={"hw.rows": outcome.pareto[1].params["hw.rows"]})
    outcome = dataclasses.replace(outcome, pareto=(outcome.pareto[0], broken))
    with pytest.raises(KeyError, match=r"hw\.cols"):  # decoding the second design
        export_designs(ctx, outcome, run_dir, with_rtl=False)
    close_sqlite_storages()  # its write-ahead log (study.db-wal, -shm) goes while it is open
    assert tree_hash(run_dir) == before
