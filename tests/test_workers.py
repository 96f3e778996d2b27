"""Several workers on one study (real PostgreSQL / journal files), SIGKILL mid-study and resume."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from pgcluster import pg_cluster, pg_url  # noqa: F401  (fixtures)

from codesign.search.storage import open_storage
from codesign.study import REPO_ROOT

STUDY = REPO_ROOT / "studies" / "deit_small_zcu102.yaml"
NAME = "deit_small_zcu102"
FAST_HEARTBEAT = {"CODESIGN_HEARTBEAT_S": "1", "CODESIGN_GRACE_S": "2"}


def command(out: Path, storage: str, trials: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "codesign.search",
        "--hw-only",
        "W8A8",
        "--model",
        "deit_small_patch16_224",
        "--study",
        str(STUDY),
        "--fps",
        "5",
        "--trials",
        str(trials),
        "--out",
        str(out),
        "--storage",
        storage,
        "--workers",
        str(workers),
        "--quiet",
        "--json",
        "--no-rtl",
    ]


def env() -> dict[str, str]:
    return {**os.environ, **FAST_HEARTBEAT, "PYTHONPATH": str(REPO_ROOT)}


def trials_of(storage: str) -> list[FrozenTrial]:
    os.environ.update(FAST_HEARTBEAT)
    return optuna.load_study(study_name=NAME, storage=open_storage(storage)).get_trials(deepcopy=False)


def _take_queued(url: str, barrier: object, results: object) -> None:
    """A worker's side of starting trials: pop queued (WAITING) trials until none is left."""
    study = optuna.load_study(study_name="queue", storage=open_storage(url))
    barrier.wait()  # type: ignore[attr-defined]
    taken = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:  # what study.ask() does first
        taken.append(trial_id)
    results.put(taken)  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_concurrent_workers_take_each_queued_trial_once(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Baselines and retried trials are queued; two workers must never both run one. On SQLite
    (no row locks) they did, 13 of 60 here, until transactions began with BEGIN IMMEDIATE."""
    url = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'queue.db'}",
        "journal": lambda: str(tmp_path / "queue.log"),
        "postgresql": lambda: request.getfixturevalue("pg_url"),
    }[kind]()
    study = optuna.create_study(study_name="queue", storage=open_storage(url))
    for i in range(60):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_take_queued, args=(url, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    taken = [trial_id for _ in procs for trial_id in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(taken) == sorted(t._trial_id for t in study.get_trials(deepcopy=False))


def check_consistent(run_dir: Path, storage: str, budget: int, workers: int) -> list[FrozenTrial]:
    """Budget met, numbers unique, nothing RUNNING, exports = storage."""
    trials = trials_of(storage)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))), "duplicate or missing trial numbers"
    states = Counter(t.state for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert budget <= len(complete) <= budget + workers - 1, states
    assert states[TrialState.RUNNING] == 0, states
    info = json.loads((run_dir / "summary.json").read_text())
    assert info["trials"] == len(complete)
    with open(run_dir / "trials.csv", newline="") as fh:
        assert sorted(int(r["trial"]) for r in csv.DictReader(fh)) == sorted(t.number for t in complete)
    with open(run_dir / "pareto.csv", newline="") as fh:
        pareto = sorted(int(r["trial"]) for r in csv.DictReader(fh))
    assert pareto == sorted(info["pareto_trials"]) and pareto
    assert sorted(int(p.name) for p in (run_dir / "designs").iterdir()) == pareto
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temporary export files left"
    return trials


def test_two_workers_share_one_postgresql_study(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    budget = 60
    proc = subprocess.run(
        command(tmp_path, pg_url, budget, 2), env=env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    trials = check_consistent(tmp_path / NAME, pg_url, budget, 2)
    workers = Counter(t.user_attrs.get("worker") for t in trials if t.state == TrialState.COMPLETE)
    assert len(workers) == 2, f"both processes should run trials: {workers}"
    # Running the same command again: budget already met, nothing new.
    again = subprocess.run(
        command(tmp_path, pg_url, budget, 2), env=env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and json.loads(again.stdout)["new_trials"] == 0, again.stderr


@pytest.mark.slow
def test_two_commands_on_one_run_folder_count_their_own_trials(tmp_path: Path) -> None:
    """Two ``codesign.search`` commands started together on one run folder (its SQLite storage):
    each reports the trials it ran itself, and together they ran the study's."""
    budget = 30
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [
        subprocess.Popen(
            command(tmp_path, storage, budget, 1),
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    complete = [t for t in trials_of(storage) if t.state == TrialState.COMPLETE]
    counts = [json.loads(out)["new_trials"] for out, _ in outs]
    assert sum(counts) == len(complete), counts
    # each count is that command's own trials in the storage
    assert sorted(c for c in counts if c) == sorted(Counter(t.user_attrs["run"] for t in complete).values())


def wait_for(storage: str, min_complete: int, proc: subprocess.Popen[str], timeout_s: float = 120) -> None:
    """Until the study has ``min_complete`` COMPLETE trials."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "search ended before it could be killed"
        try:
            complete = sum(t.state == TrialState.COMPLETE for t in trials_of(storage))
        except (KeyError, ValueError):  # the study does not exist yet
            complete = 0
        if complete >= min_complete:
            return
        time.sleep(0.05)
    raise AssertionError("study did not progress")


def running_trials(storage: str) -> list[FrozenTrial]:
    try:
        return [t for t in trials_of(storage) if t.state == TrialState.RUNNING]
    except (KeyError, ValueError):  # the study does not exist yet, or a journal line is half written
        return []


def kill_group_mid_trial(storage: str, proc: subprocess.Popen[str], min_complete: int = 25) -> None:
    """SIGKILL the search (main process and worker) while a trial is RUNNING in the storage.

    A hardware-only trial lasts milliseconds: a trial seen RUNNING may finish before a plain kill
    lands, and a search left to run while the storage is read can finish its whole budget between
    two looks (CI did, with 300 trials). So after ``min_complete`` trials the group runs only in
    short windows: frozen (SIGSTOP), the storage read while nothing moves, killed if a trial is
    RUNNING, else thawed (SIGCONT) for ``window_s`` and frozen again."""
    wait_for(storage, min_complete, proc)
    window_s = 0.02
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        os.killpg(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, "search ended before it could be killed"
        if running_trials(storage):
            os.killpg(proc.pid, signal.SIGKILL)
            return
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(window_s)
    raise AssertionError("never caught the search mid-trial")


def start_search(tmp_path: Path, storage: str, budget: int) -> subprocess.Popen[str]:
    """The search with 2 workers as a process group of its own (so a test can kill it whole)."""
    return subprocess.Popen(
        command(tmp_path, storage, budget, 2),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_sigkill_mid_study_then_resume_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    budget = 300  # room to catch a RUNNING trial after the first 25 complete (a trial takes ms)
    proc = start_search(tmp_path, pg_url, budget)
    try:
        kill_group_mid_trial(pg_url, proc)
    finally:
        proc.wait(30)
    before = trials_of(pg_url)
    finished = {t.number: t.values for t in before if t.state == TrialState.COMPLETE}
    stale = [t.number for t in before if t.state == TrialState.RUNNING]
    assert stale, "the kill should leave a trial RUNNING"
    assert len(finished) < budget

    resumed = subprocess.run(
        command(tmp_path, pg_url, budget, 2), env=env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    after = check_consistent(tmp_path / NAME, pg_url, budget, 2)
    by_number = {t.number: t for t in after}
    for number, values in finished.items():  # no finished trial lost or changed
        assert by_number[number].state == TrialState.COMPLETE and by_number[number].values == values
    retried = {t.system_attrs.get("failed_trial") for t in after if "failed_trial" in t.system_attrs}
    for number in stale:  # the killed trials failed (heartbeat) and were run again
        assert by_number[number].state == TrialState.FAIL
        assert number in retried


def worker_pids(storage: str) -> set[int]:
    """The pids of the workers that have a trial RUNNING."""
    owners = {str(t.user_attrs.get("worker", ":0")).rsplit(":", 1)[1] for t in running_trials(storage)}
    return {int(pid) for pid in owners} - {0}


@pytest.mark.slow
def test_sigkill_one_worker_journal_run_goes_on(tmp_path: Path) -> None:
    """A journal file has no heartbeats: the dead worker's trial is found by its pid."""
    budget = 150  # room for the pooled worker to start (it imports timm) and be caught mid-trial
    storage = str(tmp_path / "study.log")
    proc = start_search(tmp_path, storage, budget)
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            assert proc.poll() is None, "search ended before a worker could be killed"
            candidate = next((pid for pid in worker_pids(storage) if pid != proc.pid), None)
            if candidate is not None:  # freeze it, and kill it only if its trial is still RUNNING
                os.kill(candidate, signal.SIGSTOP)
                if candidate in worker_pids(storage):
                    victim = candidate
                else:
                    os.kill(candidate, signal.SIGCONT)
            time.sleep(0.02)
        assert victim is not None, "the extra worker never ran a trial"
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0, err
    assert f"pid {victim}" in err and len(err.splitlines()) == 1, err
    trials = check_consistent(tmp_path / NAME, storage, budget, 2)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all(t.user_attrs.get("worker", "").endswith(f":{victim}") for t in failed)
