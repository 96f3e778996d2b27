"""``python -m codesign.search``: joint search of per-layer quantization and the accelerator.

    python -m codesign.search --fps 30                      # the default study
    python -m codesign.search --study studies/deit_small_zcu102.yaml --trials 300
    python -m codesign.search --hw-only W8A8 --model deit_base_patch16_224 --device zcu102

Objectives (default: maximise proxy accuracy, maximise FPS, minimise resource use) and
constraints (FPS ≥ target, resources ≤ caps) come from the study; results go to
``runs/<study>/``. Running the same command again resumes the study (SQLite in the run folder by
default) up to ``--trials`` complete trials in total.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from optuna.trial import TrialState

from codesign.atomic import write_text_atomic
from codesign.beside import cores
from codesign.errors import UserError
from codesign.integer_top1 import DEFAULT_INTEGER_IMAGES
from codesign.quant import QuantConfig
from codesign.results import (
    Outcome,
    ResultRow,
    analyse,
    export_designs,
    format_pareto,
    rescore,
    summary,
    trial_rows,
    write_tables,
)
from codesign.results.designs import RtlTexts
from codesign.results.plots import render_run_plots
from codesign.results.rescore import pending, remember
from codesign.search import SearchRun, WorkerPool, default_storage
from codesign.search.ahead import FrontWatch, RescoreAhead
from codesign.search.logs import quiet_optuna
from codesign.search.storage import close_sqlite_storages
from codesign.study import DEFAULT_STUDY, Study, load_study
from codesign.torch_device import add_torch_device_argument
from hwmodel.base.cli import (
    OneLineParser,
    command_parser,
    non_negative_int,
    positive_float,
    positive_int,
    run_main,
)

COMMAND = "codesign.search"


class NoFeasibleDesign(Exception):
    """No trial met the FPS target (exit status 1, one line)."""


def build_parser() -> OneLineParser:
    p = command_parser(COMMAND, __doc__)
    p.add_argument(
        "--study",
        default=None,
        help=f"study YAML (default: {DEFAULT_STUDY.relative_to(DEFAULT_STUDY.parents[1])})",
    )
    p.add_argument("--fps", type=positive_float, help="frame-rate target: FPS ≥ this (overrides the study)")
    p.add_argument(
        "--trials", type=positive_int, help="complete trials the study should reach (overrides the study)"
    )
    p.add_argument("--timeout", type=positive_float, help="stop starting trials after this many seconds")
    p.add_argument("--seed", type=int, help="sampler seed (overrides the study)")
    p.add_argument("--out", default="runs", help="parent folder of the run folder (default: runs)")
    p.add_argument(
        "--storage", help="Optuna storage: RDB URL (sqlite:///…, postgresql://…) or journal file (*.log)"
    )
    p.add_argument("--device", help="FPGA device name or YAML path (overrides the study)")
    add_torch_device_argument(p)
    p.add_argument(
        "--model",
        help="'default' or a timm model name (overrides the study; a timm name needs --hw-only "
        "unless the study names its checkpoint)",
    )
    p.add_argument(
        "--hw-only",
        metavar="QUANT",
        nargs="?",
        const="W8A8",
        help="fix the quantization (uniform precision like W8A8, or a quant.json) "
        "and search the accelerator only",
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes on this machine (same storage)"
    )
    p.add_argument("--no-rtl", action="store_true", help="skip the Verilog export of the Pareto designs")
    p.add_argument(
        "--integer-images",
        type=non_negative_int,
        metavar="N",
        help="test images of each exported design's integer-only check (quant.json accuracy.integer; "
        f"0: none; overrides the study, default {DEFAULT_INTEGER_IMAGES})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    return p


def resolve_study(args: argparse.Namespace) -> Study:
    """The study the command line asks for: the study file with its overrides, resolved once."""
    study = load_study(Path(args.study) if args.study else DEFAULT_STUDY)
    if args.model:
        study = study.with_model_name(args.model)
    fixed = QuantConfig.parse(args.hw_only) if args.hw_only is not None else None
    return study.with_overrides(
        fps=args.fps,
        trials=args.trials,
        seed=args.seed,
        device=args.device,
        fixed_quant=fixed,
        torch_device=args.torch_device,
        integer_images=args.integer_images,
    )


class Phases:
    """Wall time of the phases of a run (``setup``, ``trials``, ``rescore``, ``exports``), each
    from the end of the previous one; a phase that starts is announced on stderr unless quiet."""

    def __init__(self, start: float, quiet: bool) -> None:
        self._last = start
        self._quiet = quiet
        self.seconds: dict[str, float] = {}

    def announce(self, what: str) -> None:
        if not self._quiet:
            sys.stderr.write(f"{COMMAND}: {what} ...\n")

    def end(self, name: str) -> float:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now
        return self.seconds[name]


def first_missing_folder(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def prepare_run_dir(out: str, name: str) -> Path:
    run_dir = Path(out) / name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output folder {run_dir} is not writable ({exc.strerror or exc})") from exc
    return run_dir


def run_search(args: argparse.Namespace) -> tuple[dict[str, Any], Outcome, list[ResultRow], Path]:
    """Run the search the command line asks for; its summary, outcome, result rows, run folder."""
    t0 = time.perf_counter()
    workers = WorkerPool.prestart(args.workers)  # N − 1 processes start importing now
    ahead = RescoreAhead.prestart(args.workers)  # one worker: re-scoring beside the trials
    try:
        return _run_search(args, t0, workers, ahead)
    finally:
        if ahead is not None:
            ahead.begin(None)  # ends the process if it is still there
        close_sqlite_storages()  # study.db-wal folded into study.db (the process ends with os._exit)


def _run_search(
    args: argparse.Namespace, t0: float, workers: WorkerPool, ahead: RescoreAhead | None
) -> tuple[dict[str, Any], Outcome, list[ResultRow], Path]:
    study = resolve_study(args)
    created = first_missing_folder(Path(args.out) / study.name)
    run_dir = prepare_run_dir(args.out, study.name)
    storage_url = args.storage or default_storage(run_dir)
    phases = Phases(t0, quiet=args.quiet)
    if ahead is not None:  # it loads the model and data while this process opens the study
        ahead.begin(study if study.fixed_quant is None else None)
    try:
        run = SearchRun.open(study, storage_url, cache_dir=run_dir, parallel=args.workers > 1)
    except BaseException:
        # a set-up that fails (bad space, device, model, storage) leaves no run folder behind
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    ctx = run.context
    done = len(run.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    trials_left = study.trials > done
    # re-scoring beside the trials: only when trials are left and accuracy is measured
    live = ahead if trials_left and ctx.evaluator is not None and ctx.fixed_quant is None else None
    if ahead is not None and live is None:
        ahead.begin(None)  # nothing for it to do: it ends
    threads = torch.get_num_threads()
    if live is not None and run.created:
        # the baselines' hardware search runs there while the proxy terms run here, one core each
        # (two torch threads beside it made the set-up slower: 29 s against 26 s on average)
        live.request_baselines()
        torch.set_num_threads(1)
    try:
        if trials_left:
            # linkl's layers on two processes (a fork shares the gradients): the same terms, ~5 s
            # sooner on the default study; the baselines' search beside them takes ~2 s of a core
            ctx.prepare_proxy(progress=not args.quiet, processes=min(2, cores()) if args.workers == 1 else 1)
    finally:
        torch.set_num_threads(threads)
    if run.created:
        baselines = live.baselines() if live is not None else None
        if baselines is None:
            phases.announce("choosing the baselines' hardware (coordinate ascent over the space)")
        run = run.with_baselines(baselines)
    phases.end("setup")  # model, data, storage, baselines, proxy terms (when trials are left to run)
    rtl = RtlTexts(ctx) if not args.no_rtl else None
    measured_ahead = 0
    try:
        if trials_left:
            watch = [FrontWatch(ctx, live.offer, run.optuna_study.get_trials(deepcopy=False))] if live else []
            if live is not None:  # the other core is the re-scoring process's (the proxy is ~1 ms)
                torch.set_num_threads(1)
            for line in workers.run(
                run, study.trials, args.timeout, show_progress_bar=not args.quiet, callbacks=watch
            ):
                sys.stderr.write(f"{COMMAND}: warning: {line}\n")
        workers.stop()
        search_s = phases.end("trials")
        frozen = run.optuna_study.get_trials(deepcopy=False)
        analysed = analyse(trial_rows(frozen, len(ctx.objectives)), ctx.objectives)
        phases.announce("re-scoring the front and writing tables and plots")
        if live is not None and ctx.evaluator is not None:
            measured = live.measured()  # (reads what the process sent, its fingerprint included)
            if live.fingerprint == ctx.evaluator.fingerprint():
                measured_ahead = measured
                # the process goes on with the designs it has not measured while this one writes
                # the Pareto designs' Verilog; then both measure what is left
                top1 = live.complete(
                    pending(ctx, analysed, run.optuna_study),
                    ctx.evaluator.accuracy,
                    meanwhile=(lambda: rtl.prebuild(analysed.pareto)) if rtl is not None else lambda: None,
                    progress=not args.quiet,
                )
                remember(run.optuna_study, live.fingerprint, top1)
            else:
                live.finish()
            if live.error is not None:
                sys.stderr.write(f"{COMMAND}: warning: re-scoring beside the trials stopped ({live.error})\n")
    finally:
        torch.set_num_threads(threads)
    outcome = rescore(ctx, analysed, run.optuna_study, progress=not args.quiet)
    rows, changed = write_tables(run_dir, outcome)
    info = summary(ctx, outcome)
    plots = [run_dir / "pareto.png", run_dir / "pareto.html", run_dir / "hypervolume.png"]
    if changed or not all(p.is_file() for p in plots):  # the same tables: the plots are drawn already
        render_run_plots(run_dir, rows, outcome.hv_history, info)
    phases.end("rescore")
    if outcome.pareto:
        phases.announce(f"exporting {len(outcome.pareto)} Pareto designs")
        export_designs(ctx, outcome, run_dir, with_rtl=not args.no_rtl, progress=not args.quiet, rtl=rtl)
    phases.end("exports")
    ran = run.trials_run_here(frozen)
    info.update(
        {
            "storage": storage_url,
            "study_file": str(study.source),
            "new_trials": ran,
            "search_s": search_s,
            "mean_trial_s": search_s / ran if ran > 0 else None,
            "phase_s": phases.seconds,
            "wall_s": time.perf_counter() - t0,
            "cache_hits": run.objective.cache_hits,
            "measured_beside_trials": measured_ahead,
            "baselines_enqueued": list(run.baselines),
            "hw_only": args.hw_only,
        }
    )
    write_text_atomic(run_dir / "summary.json", json.dumps(info, indent=2) + "\n")
    return info, outcome, rows, run_dir


def no_feasible_line(outcome: Outcome, fps: float | None, device: str) -> str:
    """Why no design is feasible, in one line: the best FPS reached, or the closest fit."""
    rows = outcome.rows
    if fps and not any(r.fps_ok for r in rows):
        best = max(rows, key=lambda r: float(r.attrs.get("fps", 0.0)))
        return (
            f"no design reached {fps:g} FPS: best {float(best.attrs['fps']):.2f} FPS in trial {best.number}"
        )
    fast = [r for r in rows if r.fps_ok]
    closest = min(fast, key=lambda r: float(r.attrs.get("resource_use", float("inf"))))
    target = f" at {fps:g} FPS or more" if fps else ""
    return (
        f"no design fits {device} under the utilisation caps{target}: closest is trial {closest.number} "
        f"({'; '.join(closest.attrs.get('violations', [])) or 'clock above the device maximum'})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_optuna()
    info, outcome, rows, run_dir = run_search(args)
    if args.json:
        keys = (
            "trials",
            "feasible",
            "pareto",
            "hypervolume",
            "baseline_hypervolume",
            "wall_s",
            "mean_trial_s",
            "phase_s",
            "new_trials",
            "fps_target",
            "study",
            "device",
        )
        print(json.dumps({k: info[k] for k in keys}, indent=2))
    else:
        print(format_pareto([r for r in rows if r.pareto]))
        phase = ", ".join(f"{k} {v:.1f} s" for k, v in info["phase_s"].items())
        print(
            f"\n{info['trials']} trials ({info['new_trials']} new), {info['feasible']} feasible, "
            f"{info['pareto']} on the Pareto front; hypervolume {info['hypervolume']:.4f} "
            f"(baselines only {info['baseline_hypervolume']:.4f})"
        )
        print(f"time: {info['wall_s']:.1f} s ({phase})")
        print(f"outputs: {run_dir}/ (pareto.csv, pareto.png, pareto.html, hypervolume.png, designs/)")
    fps = info["fps_target"]
    if outcome.rows and not any(r.feasible for r in outcome.rows):
        raise NoFeasibleDesign(no_feasible_line(outcome, fps, info["device"]))
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    try:
        return run_main(main, argv, prog=COMMAND)
    except NoFeasibleDesign as exc:
        sys.stderr.write(f"{COMMAND}: {exc}\n")
        return 1
