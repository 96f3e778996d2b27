"""End-to-end search on the shipped default model: outputs, exports that reload, resume, errors."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import jsonschema
import optuna
import pytest

from codesign.cli.search import entry
from codesign.export import DSP_MODELS_FILE, TESTBENCH_FILE
from codesign.models import create_default_model
from codesign.quant import QuantConfig, load_int_model
from hwmodel.model.document import FIGURES, SCHEMA_PATH, load_config
from hwmodel.model.evaluation import evaluate
from hwmodel.rtl.verilog import iverilog_available, run_icarus
from hwmodel.target.device import load_device
from hwmodel.target.workload import workload_from_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert entry(["--trials", "12", "--fps", "30", "--out", str(out), "--quiet", "--json"]) == 0
    return out / "default"


@pytest.fixture(scope="module")
def evaluator() -> Any:
    """The real evaluator of the shipped model and its splits (as the run scores designs)."""
    from codesign.models import load_default
    from codesign.proxy import Evaluator

    model, splits = load_default()
    return Evaluator(model, splits)


def test_outputs_exist(run: Path) -> None:
    for name in (
        "study.db",
        "pareto.csv",
        "trials.csv",
        "pareto.png",
        "pareto.html",
        "hypervolume.png",
        "summary.json",
    ):
        assert (run / name).is_file(), name
    info = json.loads((run / "summary.json").read_text())
    assert info["trials"] == 12 and info["pareto"] >= 1 and info["feasible"] >= info["pareto"]
    assert set(info["baseline_trials"]) == {"W8A8 fixed", "W4A8 fixed", "Auto-ViT-Acc-like W4/PoT4 mix A8"}
    assert info["hypervolume"] >= info["baseline_hypervolume"] >= 0
    # accuracies are counts of test images: no float32 noise (97.9, not 97.89999723434448)
    assert info["real_accuracy"] and all(v == round(v, 6) for v in info["real_accuracy"].values())
    designs = sorted(p.name for p in (run / "designs").iterdir())
    assert designs == sorted(str(n) for n in info["pareto_trials"])


def test_every_export_reloads_and_reproduces(run: Path, evaluator: Any) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    info = json.loads((run / "summary.json").read_text())
    workload = workload_from_model(evaluator.model, "default_vit_mnist")
    for trial in info["pareto_trials"]:
        d = run / "designs" / str(trial)
        doc = json.loads((d / "accelerator.json").read_text())
        jsonschema.validate(doc, schema)
        accel = load_config(d / "accelerator.json")
        report = evaluate(workload, accel, load_device(doc["device"]["name"]), detail=True).to_dict()
        for key in ("latency_cycles", "fps", "gops", "resources", "feasible"):
            assert report[key] == doc["predicted"][key], key
        quant_doc = json.loads((d / "quant.json").read_text())
        quant = QuantConfig.from_dict(quant_doc["config"])
        assert set(quant_doc["LayerName"]) == set(workload.layer_names())
        qmodel = load_int_model(d / "model_int.pt", create_default_model)
        assert qmodel.quant_config == quant
        acc = evaluator.top1(qmodel)
        assert acc == pytest.approx(quant_doc["accuracy"]["real_top1"], abs=1e-9)
        verilog = (d / "rtl" / "engine.v").read_text()
        assert "module codesign_engine" in verilog
        for kind in ("softmax", "layernorm", "gelu"):  # the non-linear units beside the engine
            unit = (d / "rtl" / f"{kind}.v").read_text()
            assert f"module codesign_{kind}" in unit and f"in_data_{accel.nonlinear_lanes - 1}" in unit
        controller = (d / "rtl" / "controller.v").read_text()  # the tile controller, as priced
        assert "module codesign_controller" in controller and "input_a_eng_addr" in controller
        assert (d / "model.qonnx.onnx").stat().st_size > 100_000


@pytest.mark.skipif(not iverilog_available(), reason="iverilog not installed")
def test_every_exported_testbench_passes_under_icarus(run: Path) -> None:
    """rtl/tb_engine.v of every design: its engine, fed one tile of the design's own integer
    model, returns the exact C tile in the model's cycles."""
    info = json.loads((run / "summary.json").read_text())
    for trial in info["pareto_trials"]:
        rtl = run / "designs" / str(trial) / "rtl"
        files = [rtl / "engine.v", rtl / TESTBENCH_FILE]
        files += [rtl / DSP_MODELS_FILE] if (rtl / DSP_MODELS_FILE).is_file() else []
        tb = files[1].read_text()
        assert "of the design's integer model, input tokens" in tb
        assert re.search(r"^PASS: tb_engine .* exact, (\d+) cycles \(model \1\)$", run_icarus(files), re.M)


def test_hwmodel_report_reproduces_every_design(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m hwmodel.report --config accelerator.json`` prices each design on the model,
    device and caps the file records and reproduces its predicted figures exactly."""
    from hwmodel.report import main as hw_report

    info = json.loads((run / "summary.json").read_text())
    for trial in info["pareto_trials"]:
        path = run / "designs" / str(trial) / "accelerator.json"
        doc = json.loads(path.read_text())
        assert doc["model"]["name"] == "default_vit_mnist" and doc["device"]["name"] == "pynq_z2"
        assert hw_report(["--config", str(path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["recorded_differences"] == []
        assert {k: out[k] for k in FIGURES} == {k: doc["predicted"][k] for k in FIGURES}
        assert out["layers"] == doc["predicted"]["layers"]
    # the shipped model by its name, the device by its name, the bare config block: the same figures
    config = tmp_path / "config_only.json"
    config.write_text(json.dumps(doc["config"]))
    argv = ["--config", str(config), "--model", "default_vit_mnist", "--device", "pynq_z2", "--json"]
    assert hw_report(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in FIGURES} == {k: doc["predicted"][k] for k in FIGURES}
    assert hw_report(["--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "model default_vit_mnist on pynq_z2" in text and "reproduced exactly" in text


def test_report_command(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from codesign.cli.report import main

    trial = json.loads((run / "summary.json").read_text())["pareto_trials"][0]
    (run / "pareto.png").unlink()
    (run / "pareto.html").unlink()
    assert main([str(run)]) == 0
    assert (run / "pareto.png").is_file()
    assert "top-1 of the" in (run / "pareto.html").read_text()  # real accuracy of the re-scored designs
    out = capsys.readouterr().out
    assert "hypervolume" in out and "trial" in out and "proxy" in out and "top-1 %" in out
    assert main([str(run), "--trial", str(trial)]) == 0
    assert "blocks.0.attn.qkv" in capsys.readouterr().out


def test_rerun_with_nothing_to_do_evaluates_and_exports_nothing(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same command on a finished study: real accuracies come from the study, the designs
    folder is kept (same files, not rewritten), the summary says the same."""
    from codesign.proxy import Evaluator
    from codesign.proxy._linear import LinearizedKL

    before = json.loads((run / "summary.json").read_text())
    written = {p: p.stat().st_mtime_ns for p in (run / "designs").rglob("*") if p.is_file()}

    def no_evaluation(*_args: object) -> float:
        raise AssertionError("a finished study's real accuracies were evaluated again")

    def no_proxy(*_args: object) -> None:
        raise AssertionError("the proxy's terms were prepared for a run with no trial to do")

    monkeypatch.setattr(Evaluator, "accuracy", no_evaluation)
    monkeypatch.setattr(LinearizedKL, "__init__", no_proxy)
    assert entry(["--trials", "12", "--fps", "30", "--out", str(run.parent), "--quiet", "--json"]) == 0
    after = json.loads((run / "summary.json").read_text())
    assert after["new_trials"] == 0
    for key in ("pareto_trials", "real_accuracy", "hypervolume"):
        assert after[key] == before[key], key
    assert {p: p.stat().st_mtime_ns for p in (run / "designs").rglob("*") if p.is_file()} == written
    # a design folder missing a file is exported again, whole
    lost = run / "designs" / str(before["pareto_trials"][0]) / "quant.json"
    lost.unlink()
    assert entry(["--trials", "12", "--fps", "30", "--out", str(run.parent), "--quiet", "--json"]) == 0
    assert lost.is_file()
    assert {p for p in (run / "designs").rglob("*") if p.is_file()} == set(written)


def _dashboard_get(app: Any, path: str) -> Any:
    """GET ``path`` from a WSGI app (optuna-dashboard's own API), parsed JSON."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update({"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""})
    status: list[str] = []
    body = b"".join(app(environ, lambda s, _h, *_a: status.append(s)))
    assert status and status[0].startswith("200"), (path, status)
    return json.loads(body)


def test_optuna_dashboard_sees_the_feasible_set_and_front_of_pareto_csv(run: Path) -> None:
    """optuna-dashboard (its API, as its Pareto plot reads it): a trial is feasible when every value
    of its ``constraints`` is ≤ 0, and the front is drawn from the feasible trials only."""
    dashboard = pytest.importorskip("optuna_dashboard")
    app = dashboard.wsgi(f"sqlite:///{run / 'study.db'}")
    study_id = next(
        s["study_id"]
        for s in _dashboard_get(app, "/api/studies")["study_summaries"]
        if s["study_name"] == "default"
    )
    detail = _dashboard_get(app, f"/api/studies/{study_id}")
    trials = [t for t in detail["trials"] if t["state"] == "Complete"]
    feasible = {t["number"]: t["values"] for t in trials if t["constraints"] and max(t["constraints"]) <= 0}
    with open(run / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert set(feasible) == {int(r["trial"]) for r in rows if r["feasible"] == "1"}
    signs = [1.0 if d == "maximize" else -1.0 for d in detail["directions"]]

    def dominates(a: list[float], b: list[float]) -> bool:
        ge = [x * s >= y * s for x, y, s in zip(a, b, signs, strict=True)]
        return all(ge) and a != b

    front = {tuple(v) for v in feasible.values() if not any(dominates(w, v) for w in feasible.values())}
    with open(run / "pareto.csv", newline="") as fh:
        pareto = {int(r["trial"]) for r in csv.DictReader(fh)}
    assert front == {tuple(feasible[n]) for n in pareto}


def test_qonnx_graph_of_a_design_runs_like_pytorch(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``codesign.report --trial N --qonnx``: the exported QONNX graph, run by qonnx's executor on
    test images, predicts what the PyTorch fake-quant model of model_int.pt predicts."""
    from codesign.cli.report import main

    trial = min(json.loads((run / "summary.json").read_text())["pareto_trials"])
    assert main([str(run), "--trial", str(trial), "--qonnx", "--images", "48", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["images"] == 48 and check["argmax_agreement_pct"] == 100.0
    assert check["quant_nodes"] >= 6 * 12 + 4  # every quantization point of the 6 blocks, embedding, head
    assert check["median_abs_logit_diff"] < 1e-4  # float rounding; a boundary flip moves one image
    assert check["max_abs_logit_diff"] < 0.5


def test_finetune_records_its_accuracy_beside_the_post_training_one(
    run: Path, evaluator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from codesign.cli.finetune import main

    trial = min(json.loads((run / "summary.json").read_text())["pareto_trials"])
    d = run / "designs" / str(trial)
    before = json.loads((d / "quant.json").read_text())["accuracy"]
    argv = [str(run), "--trial", str(trial), "--epochs", "1", "--batch", "128", "--quiet", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    doc = json.loads((d / "quant.json").read_text())
    assert doc["accuracy"]["real_top1"] == before["real_top1"] == out["post_training_top1"]
    assert doc["accuracy"]["finetuned_top1"] == out["finetuned_top1"]
    assert doc["finetune"]["steps"] == out["steps"] == 20  # 2,500 training images, batch 128
    tuned = load_int_model(d / "model_int.pt", create_default_model)
    assert evaluator.top1(tuned) == pytest.approx(out["finetuned_top1"], abs=1e-9)


def test_resume_adds_trials_to_the_same_study(run: Path, tmp_path: Path) -> None:
    out = run.parent
    assert entry(["--trials", "15", "--fps", "30", "--out", str(out), "--quiet", "--json", "--no-rtl"]) == 0
    storage = f"sqlite:///{run / 'study.db'}"
    trials = optuna.load_study(study_name="default", storage=storage).get_trials()
    numbers = [t.number for t in trials]
    assert len(trials) == 15 and len(set(numbers)) == 15
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_unreachable_fps_target_is_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a fresh run folder holding the proxy's terms of the same model and images (the cache a
    # resumed search or another worker reads; computing them is the run fixture's part)
    (tmp_path / "default").mkdir()
    shutil.copy2(run / "proxy_terms.pt", tmp_path / "default" / "proxy_terms.pt")
    code = entry(
        ["--trials", "4", "--fps", "1000000", "--out", str(tmp_path), "--quiet", "--json", "--no-rtl"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "1e+06 FPS" in err[0] and "best" in err[0] and "trial" in err[0]


def test_other_search_space_cannot_resume(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).parents[1]
    space = tmp_path / "space.yaml"
    space.write_text(
        (root / "search_spaces" / "default.yaml").read_text().replace("rows: [2, 4, 8, 16]", "rows: [2, 4]")
    )
    study = tmp_path / "study.yaml"
    study.write_text(
        (root / "studies" / "default.yaml").read_text().replace("../search_spaces/default.yaml", str(space))
    )
    before = (run / "study.db").read_bytes()
    code = entry(
        ["--study", str(study), "--trials", "20", "--fps", "30", "--out", str(run.parent), "--quiet"]
    )
    assert code == 2
    assert "another search space" in capsys.readouterr().err
    assert (run / "study.db").read_bytes() == before


def test_no_design_fits_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No array of the DeiT-B search space fits a PYNQ-Z2 (220 DSP slices, 150 MHz)."""
    study = str(Path(__file__).parents[1] / "studies" / "deit_base_zcu102.yaml")
    argv = ["--study", study, "--hw-only", "W4A8P0.5", "--fps", "20", "--trials", "30", "--device", "pynq_z2"]
    code = entry([*argv, "--out", str(tmp_path), "--quiet", "--json", "--no-rtl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "no design fits pynq_z2" in err[0] and "closest is trial" in err[0], err


def test_every_design_of_the_final_front_is_offered_beside_the_trials(run: Path) -> None:
    """Replaying the run's trials through the callback: each offer starts with the baselines so
    far, and the designs of the final front (and every baseline) were all offered."""
    from codesign.context import build_context
    from codesign.results.rescore import quant_key
    from codesign.search.ahead import FrontWatch
    from codesign.study import DEFAULT_STUDY, load_study

    ctx = build_context(load_study(DEFAULT_STUDY))
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{run / 'study.db'}")
    trials = study.get_trials(deepcopy=False)
    offers: list[list[str]] = []
    watch = FrontWatch(ctx, lambda configs: offers.append(list(configs)))
    for t in trials:
        watch(study, t)
    info = json.loads((run / "summary.json").read_text())
    key = {
        t.number: quant_key(ctx.space.decode(t.params, ctx.layers, ctx.fixed_quant).quant)
        for t in trials
        if t.values is not None
    }
    baselines = [key[t.number] for t in trials if t.user_attrs.get("baseline")]
    offered = {k for o in offers for k in o}
    assert {key[n] for n in info["pareto_trials"]} <= offered
    assert set(baselines) <= offered
    assert all(o[: len(set(baselines))] == list(dict.fromkeys(baselines)) for o in offers[-1:])
    assert isinstance(info["measured_beside_trials"], int)
