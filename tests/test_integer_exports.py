"""Integer-only top-1 of exported designs: quant.json's ``accuracy.integer`` block (the figures, or
why there are none), the re-export digest, and ``codesign.report --trial N --integer``.

The run folder is built without a search: a study of the tiny ViT of ``test_quant_model`` on the
shipped MNIST digits with ``nonlinear: int``, two designs put on the front by hand (trial 0
W4A8P0.5, which the integer program runs; trial 1 W8A8P0.5, whose 8-bit PoT codes it refuses) and
exported by the exporter of ``codesign.search``.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
from test_quant_model import tiny_vit

from codesign.cli.report import entry as report_entry
from codesign.context import SearchContext, build_context
from codesign.errors import UserError
from codesign.integer_top1 import EXPORTED_FIGURES, IntegerTop1, compare_integer, integer_refusal
from codesign.program.driver import Accelerator, ProgramFiles
from codesign.quant import QuantConfig, integer_model, load_int_model
from codesign.results import Outcome, export_designs, summary
from codesign.results.designs import _plans
from codesign.results.trials import TrialRow
from codesign.space import HW_KEYS
from codesign.study import REPO_ROOT, load_study

IMAGES = 24
#: (trial, weight bits, PoT ratio): the integer program runs the first, refuses the second
DESIGNS = ((0, 4, 0.5), (1, 8, 0.5))
POT_REFUSAL = "PoT codes of ≤ 6 bits"


def _study(folder: Path) -> Path:
    torch.save(tiny_vit(num_classes=10).state_dict(), folder / "vit.pt")
    space = (REPO_ROOT / "search_spaces" / "default.yaml").read_text()
    assert "nonlinear: float" in space
    (folder / "space.yaml").write_text(space.replace("nonlinear: float", "nonlinear: int"))
    path = folder / "tiny_int.yaml"
    path.write_text(
        "name: tiny_int\n"
        "model:\n"
        "  name: vit_tiny_patch16_224\n"
        f"  checkpoint: {folder / 'vit.pt'}\n"
        "  data: mnist\n"
        "  img_size: 28\n"
        "  kwargs: {patch_size: 7, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 2}\n"
        "device: pynq_z2\n"
        f"search_space: {folder / 'space.yaml'}\n"
        "fps: 1\n"
        "proxy: {kind: kl, images: 16}\n"
        f"integer_images: {IMAGES}\n"
    )
    return path


def _outcome(ctx: SearchContext) -> Outcome:
    """The two designs of :data:`DESIGNS` as a front (a 4-column array, half of it PoT)."""
    hw = {f"hw.{k}": getattr(ctx.space.hardware, k)[0] for k in HW_KEYS}
    hw.update({"hw.cols": 4, "hw.pot_cols_share": 0.5})
    rows = tuple(
        TrialRow(
            number=n,
            values=(0.0,) * len(ctx.objectives),
            attrs={"proxy": 0.0},
            params=ctx.space.baseline_params(ctx.layers, w, 8, pot, hw),
            fps_ok=True,
            resources_ok=True,
        )
        for n, w, pot in DESIGNS
    )
    return Outcome(objectives=ctx.objectives, rows=rows, pareto=rows)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SearchContext, Outcome, Path]:
    return exported_run(tmp_path_factory.mktemp("integer_run"))


def exported_run(folder: Path, with_rtl: bool = False) -> tuple[SearchContext, Outcome, Path]:
    """The run folder of the module docstring in ``folder``: its context, front and path
    (``with_rtl``: the designs' Verilog exported too)."""
    study = _study(folder)
    ctx = build_context(load_study(study))
    outcome = _outcome(ctx)
    run = folder / "runs" / "tiny_int"
    run.mkdir(parents=True)
    export_designs(ctx, outcome, run, with_rtl=with_rtl)
    info = {**summary(ctx, outcome), "study_file": str(study)}
    (run / "summary.json").write_text(json.dumps(info))
    return ctx, outcome, run


def _integer_block(run: Path, trial: int) -> dict[str, object]:
    block = json.loads((run / "designs" / str(trial) / "quant.json").read_text())["accuracy"]["integer"]
    assert isinstance(block, dict)
    return block


def test_export_records_the_integer_top1_beside_the_fake_quant_one(
    exported: tuple[SearchContext, Outcome, Path],
) -> None:
    """Trial 0's block: the figures on the study's first ``integer_images`` test images, as the
    design's model_int.pt gives them run fake-quantized and integer-only."""
    ctx, _, run = exported
    block = _integer_block(run, 0)
    assert list(block) == ["images", *EXPORTED_FIGURES]
    assert block["images"] == IMAGES
    assert ctx.evaluator is not None
    qmodel = load_int_model(run / "designs" / "0" / "model_int.pt", ctx.evaluator.model)
    assert qmodel.quant_config.for_layer("blocks.0.mlp.fc1").to_string() == "W4A8P0.5"
    again = compare_integer(qmodel, ctx.evaluator.splits.test, IMAGES)
    assert block == again.exported()
    assert 0 <= again.same_top1 <= IMAGES and again.max_abs_logit_diff > 0


def test_export_says_why_a_design_has_no_integer_top1(exported: tuple[SearchContext, Outcome, Path]) -> None:
    _, _, run = exported
    block = _integer_block(run, 1)
    assert list(block) == ["reason"]
    reason = str(block["reason"])
    assert POT_REFUSAL in reason and "W8A8P0.5" in reason and "\n" not in reason


def test_plans_without_a_check_give_their_reason(exported: tuple[SearchContext, Outcome, Path]) -> None:
    """``integer_images: 0`` skips the check, a hardware-only run has no model to check; each is
    the block's reason (and the design refused by its config keeps its own reason)."""
    ctx, outcome, _ = exported
    off = replace(ctx, study=replace(ctx.study, integer_images=0))
    reasons = {p.number: p.accuracy["integer"]["reason"] for p in _plans(off, outcome, False)}
    assert reasons[0] == "not checked (integer_images: 0)" and POT_REFUSAL in reasons[1]
    hw_only = replace(ctx, evaluator=None)
    reasons = {p.number: p.accuracy["integer"]["reason"] for p in _plans(hw_only, outcome, False)}
    assert reasons == dict.fromkeys((0, 1), "no quantized model (hardware-only run)")


def test_digest_follows_the_integer_image_count_where_it_is_used(
    exported: tuple[SearchContext, Outcome, Path],
) -> None:
    """The same settings keep the designs folder as it is; another ``integer_images`` rewrites it
    with the new count, and changes designs.json's digest of the design it is checked on, not
    of the refused one."""
    ctx, outcome, run = exported
    manifest = run / "designs.json"
    before = json.loads(manifest.read_text())["designs"]
    quant = run / "designs" / "0" / "quant.json"
    stamp = quant.stat().st_mtime_ns
    export_designs(ctx, outcome, run, with_rtl=False)
    assert quant.stat().st_mtime_ns == stamp
    more = replace(ctx, study=replace(ctx.study, integer_images=IMAGES + 8))
    try:
        export_designs(more, outcome, run, with_rtl=False)
        after = json.loads(manifest.read_text())["designs"]
        assert before["0"] != after["0"] and before["1"] == after["1"]
        assert _integer_block(run, 0)["images"] == IMAGES + 8
    finally:
        export_designs(ctx, outcome, run, with_rtl=False)  # the run the other tests read, again
    assert _integer_block(run, 0)["images"] == IMAGES
    assert json.loads(manifest.read_text())["designs"] == before


def test_report_integer_gives_the_exported_figures(
    exported: tuple[SearchContext, Outcome, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, run = exported
    assert report_entry([str(run), "--trial", "0", "--integer", "--images", str(IMAGES), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [f.name for f in fields(IntegerTop1)]
    assert {k: out[k] for k in ("images", *EXPORTED_FIGURES)} == _integer_block(run, 0)
    assert report_entry([str(run), "--trial", "0", "--integer", "--images", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("trial 0: top-1 on 8 test images: fake-quant ")
    assert "integer-only" in lines[0] and " pt); same top-1 on " in lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--trial", "1", "--integer"], POT_REFUSAL),
        (["--integer"], "--integer needs --trial N"),
        (["--trial", "7", "--integer"], "trial 7 has no exported design"),
        (["--trial", "0", "--integer", "--qonnx"], "not allowed with argument"),
    ],
)
def test_report_integer_refusals_are_one_line(
    exported: tuple[SearchContext, Outcome, Path],
    argv: list[str],
    needle: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, _, run = exported
    try:
        rc = report_entry([str(run), *argv])
    except SystemExit as exc:  # argparse's own checks exit from the parser
        rc = int(exc.code or 0)
    err = capfd.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("codesign.report: error: "), err
    assert needle in err


def test_config_refusal_names_the_layer_it_needs() -> None:
    """The export's reason is the integer program's own line (a float default the layers use)."""
    layers = ("patch_embed.proj", "head")
    assert integer_refusal(QuantConfig.uniform("W8A8", nonlinear="int"), layers) is None
    assert "nonlinear: int" in str(integer_refusal(QuantConfig.uniform("W8A8"), layers))
    head_float = QuantConfig.uniform("W8A8", nonlinear="int").with_layers({"head": "fp32"})
    assert str(integer_refusal(head_float, layers)).startswith("layers.head: integer inference needs")


def test_the_exported_program_runs_bit_exact_through_the_driver(
    exported: tuple[SearchContext, Outcome, Path],
) -> None:
    """Trial 0's program.bin / params.bin through the host driver: the integer model's logits of
    its model_int.pt, bit for bit; trial 1 (refused) has no program."""
    ctx, _, run = exported
    assert ctx.evaluator is not None
    design = run / "designs" / "0"
    qmodel = load_int_model(design / "model_int.pt", ctx.evaluator.model)
    images = ctx.evaluator.splits.test.head(4)
    acc = Accelerator(ProgramFiles.read(design))
    assert acc.accumulators(images).tolist() == integer_model(qmodel).accumulators(images).tolist()
    ops = json.loads((design / "program.json").read_text())["ops"]
    assert [op["name"] for op in ops] == [op.name for op in ctx.workload.ops]
    with pytest.raises(UserError, match=r"no program\.json, program\.bin, params\.bin .*accuracy\.integer"):
        ProgramFiles.read(run / "designs" / "1")
