"""A design's choice of non-linear kernel variant (poly / shift) per op kind: accelerator config,
quantized model, search space, evaluation and exports all follow it."""

from __future__ import annotations

import itertools
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_quant_model import tiny_vit
from test_space_study import RandomTrial

from codesign.errors import UserError
from codesign.export import accelerator_document, nonlinear_units_for, nonlinear_verilog, quant_document
from codesign.proxy._linear import LinearizedKL
from codesign.quant import (
    KERNELS,
    VARIANTS,
    Calibration,
    IntNonlinear,
    QuantConfig,
    nonlinear_modules,
    quantize_model,
)
from codesign.results.rescore import quant_key
from codesign.space import kernel_param, load_space
from hwmodel.arch.config import NONLINEAR_KINDS, AcceleratorConfig
from hwmodel.arch.nonlinear import op_cycles
from hwmodel.cost.coefficients import load_coefficients
from hwmodel.cost.nonlinear import unit_resources
from hwmodel.model.document import SCHEMA_PATH, validate_document
from hwmodel.model.evaluation import UtilisationCaps, evaluate, nonlinear_row_bits
from hwmodel.target.device import load_device
from hwmodel.target.workload import Workload

ROOT = Path(__file__).parents[1]
DEFAULT_SPACE = ROOT / "search_spaces" / "default.yaml"
DEIT_SPACE = ROOT / "search_spaces" / "deit_zcu102.yaml"
CHOICES = [(kind, variant) for kind in sorted(KERNELS) for variant in VARIANTS]
ALL_SHIFT = dict.fromkeys(NONLINEAR_KINDS, "shift")


def _config(**kw: Any) -> AcceleratorConfig:
    return AcceleratorConfig(freq_mhz=100.0, rows=4, cols=8, **kw)


# ----------------------------------------------------------------------------- accelerator config


def test_registries_agree() -> None:
    """Every op kind has every variant, and the accelerator.json schema allows exactly them."""
    assert set(NONLINEAR_KINDS) == set(KERNELS) and all(set(v) == set(VARIANTS) for v in KERNELS.values())
    schema = json.loads(SCHEMA_PATH.read_text())["properties"]["config"]["properties"]["nonlinear_kernels"]
    assert set(schema["properties"]) == set(NONLINEAR_KINDS)
    assert all(p["enum"] == list(VARIANTS) for p in schema["properties"].values())


def test_default_config_is_all_poly_and_its_document_unchanged() -> None:
    cfg = _config()
    assert dict(cfg.nonlinear_kernels) == dict.fromkeys(NONLINEAR_KINDS, "poly")
    assert "nonlinear_kernels" not in cfg.to_dict()
    assert AcceleratorConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("kind", "variant"), CHOICES)
def test_config_round_trips_every_choice(kind: str, variant: str) -> None:
    raw = _config().to_dict() | {"nonlinear_kernels": {kind: variant}}
    cfg = AcceleratorConfig.from_dict(raw, "a.json")
    assert cfg.nonlinear_kernels[kind] == variant
    assert all(v == "poly" for k, v in cfg.nonlinear_kernels.items() if k != kind)
    out = cfg.to_dict()
    assert ("nonlinear_kernels" in out) == (variant != "poly")
    assert AcceleratorConfig.from_dict(out) == cfg
    if variant != "poly":
        assert out["nonlinear_kernels"] == dict(cfg.nonlinear_kernels)


@pytest.mark.parametrize(
    ("kernels", "needle"),
    [
        (
            {"softmax": "cubic"},
            "a.json: nonlinear_kernels: key 'softmax' must be one of poly, shift, got 'cubic'",
        ),
        (
            {"sigmoid": "shift"},
            "a.json: nonlinear_kernels: unknown key 'sigmoid' (allowed: softmax, layernorm, gelu)",
        ),
        ({"gelu": 1}, "key 'gelu' must be one of poly, shift, got 1"),
        ("shift", "a.json: nonlinear_kernels: expected a mapping"),
    ],
)
def test_bad_kernels_are_one_line(kernels: Any, needle: str) -> None:
    raw = _config().to_dict() | {"nonlinear_kernels": kernels}
    with pytest.raises(UserError) as err:
        AcceleratorConfig.from_dict(raw, "a.json")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_exported_document_carries_the_choice(mnist_workload: Workload) -> None:
    """accelerator.json's config block holds the kernels; the schema refuses an unknown one."""
    dev = load_device("pynq_z2")
    space = load_space(DEFAULT_SPACE)
    layers = mnist_workload.layer_names()
    cand = space.decode(
        space.suggest(RandomTrial(2), layers), layers, QuantConfig.uniform("W8A8", kernels=ALL_SHIFT)
    )
    rep = evaluate(mnist_workload, cand.accel, dev, detail=True)
    doc = accelerator_document(cand, mnist_workload, dev, UtilisationCaps(), rep, 0)
    assert doc["config"]["nonlinear_kernels"] == ALL_SHIFT
    validate_document(doc, "accelerator.json")
    assert AcceleratorConfig.from_dict(doc["config"]) == cand.accel
    doc["config"]["nonlinear_kernels"]["gelu"] = "lut"
    with pytest.raises(UserError, match=r"key 'config\.nonlinear_kernels\.gelu'"):
        validate_document(doc, "accelerator.json")


# ----------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(("kind", "variant"), CHOICES)
def test_evaluate_prices_each_unit_with_its_variant(
    mnist_workload: Workload, kind: str, variant: str
) -> None:
    """The units' DSPs, LUTs and cycles are the chosen variant's unit and op cycles, the others poly."""
    dev, coef = load_device("pynq_z2"), load_coefficients()
    cfg = _config(nonlinear_lanes=2, nonlinear_kernels={kind: variant})
    rep = evaluate(mnist_workload, cfg, dev, detail=True)
    bits = nonlinear_row_bits(mnist_workload)
    units = {
        k: unit_resources(k, dev.synth_family, coef, 2, b, variant=cfg.nonlinear_kernels[k])
        for k, b in bits.items()
    }
    assert rep.nonlinear_resources.dsp == sum(u.dsp for u in units.values())
    if variant == "shift":
        assert units[kind].dsp == 0
    # each op's unit is busy for the op's cycles on its own (in series) or, beside its GEMM, for
    # the jobs of its groups of rows (each ⌈rows / lanes⌉: at least as many)
    rows = [r for r in rep.layers if r.bound in ("nonlinear", "overlapped")]
    for op, row in zip(mnist_workload.nonlinears, rows, strict=True):
        alone = op_cycles(op.kind, op.rows, op.row_len, 2, bits[op.kind], cfg.nonlinear_kernels[op.kind])
        assert row.compute_cycles == alone if row.bound == "nonlinear" else row.compute_cycles >= alone
    assert rep.nonlinear_cycles == sum(r.compute_cycles for r in rows)
    poly = evaluate(mnist_workload, _config(nonlinear_lanes=2), dev, detail=True)
    if variant == "poly":
        assert rep == poly
    else:  # the shift unit takes no DSP slice, where the poly one takes some
        assert rep.nonlinear_resources.dsp < poly.nonlinear_resources.dsp
        assert rep.nonlinear_cycles != poly.nonlinear_cycles


def test_all_shift_units_take_no_dsp(deit_base: Workload) -> None:
    dev = load_device("zcu102")
    cfg = AcceleratorConfig(freq_mhz=200.0, rows=16, cols=64, nonlinear_kernels=ALL_SHIFT)
    poly = evaluate(deit_base, AcceleratorConfig(freq_mhz=200.0, rows=16, cols=64), dev)
    rep = evaluate(deit_base, cfg, dev)
    assert rep.nonlinear_resources.dsp == 0 < poly.nonlinear_resources.dsp
    assert rep.resources.dsp == poly.resources.dsp - poly.nonlinear_resources.dsp
    assert rep.nonlinear_resources.lut > poly.nonlinear_resources.lut  # the shift lanes are fabric


# ----------------------------------------------------------------------------- quantization config


def test_quant_config_kernels_round_trip() -> None:
    poly = QuantConfig.uniform("W8A8", nonlinear="int")
    assert poly.all_poly and "kernels" not in poly.to_dict()
    cfg = QuantConfig.uniform("W8A8", nonlinear="int", kernels={"softmax": "shift"})
    assert dict(cfg.kernels) == {"softmax": "shift", "layernorm": "poly", "gelu": "poly"}
    assert cfg.to_dict()["kernels"] == {"gelu": "poly", "layernorm": "poly", "softmax": "shift"}
    assert QuantConfig.from_dict(cfg.to_dict()) == cfg and QuantConfig.from_json(cfg.to_json()) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg and hash(cfg) != hash(poly)
    assert cfg.with_layers({"head": "W8A8"}).kernels == cfg.kernels
    doc = quant_document(cfg, ("head",), "m", {})
    assert doc["methods"]["kernels"] == dict(cfg.kernels)
    layered = QuantConfig.from_json(json.dumps({k: v for k, v in doc.items() if k != "config"}))
    assert layered.kernels == cfg.kernels
    assert "kernels" not in quant_document(poly, ("head",), "m", {})["methods"]
    # the real accuracy: the kernels count with nonlinear: int only (float runs the float operators)
    assert quant_key(cfg) != quant_key(poly)
    flt = QuantConfig.uniform("W8A8", kernels={"softmax": "shift"})
    assert quant_key(flt) == quant_key(QuantConfig.uniform("W8A8")) and flt != QuantConfig.uniform("W8A8")


def test_bad_quant_kernels_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"default": "W8A8", "kernels": {"gelu": "erf"}}))
    with pytest.raises(UserError, match=r"q.json: kernels: key 'gelu' must be one of poly, shift, got 'erf'"):
        QuantConfig.load(path)
    with pytest.raises(UserError, match="kernels: unknown key 'exp'"):
        QuantConfig.uniform("W8A8", kernels={"exp": "shift"})


# ----------------------------------------------------------------------------- quantized model


@pytest.mark.parametrize(("kind", "variant"), CHOICES)
def test_int_nonlinear_is_the_chosen_kernel_on_the_codes(kind: str, variant: str) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 2, 33, generator=gen) * 4
    mod = IntNonlinear(kind, 2.0**-10, variant=variant)
    y = mod(x)
    codes = mod.codes(x).numpy()
    want = KERNELS[kind][variant](codes, mod.spec)
    assert np.array_equal(y.numpy().astype(np.float64) * 2.0**mod.spec.out_frac, want.astype(np.float64))


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_int_nonlinear_gradient_is_the_float_operators(kind: str) -> None:
    """Straight-through: the forward value is the kernel's exactly, the gradient the float op's."""
    gen = torch.Generator().manual_seed(4)
    x = (torch.randn(6, 17, generator=gen) * 2).requires_grad_(True)
    mod = IntNonlinear(kind, 2.0**-10, variant="shift")
    w = torch.randn(6, 17, generator=gen)
    y = mod(x)
    with torch.no_grad():
        assert torch.equal(y, mod(x))
    (y * w).sum().backward()  # type: ignore[no-untyped-call]
    x2 = x.detach().clone().requires_grad_(True)
    ref = {
        "softmax": lambda t: t.softmax(-1),
        "layernorm": lambda t: torch.nn.functional.layer_norm(t, t.shape[-1:]),
        "gelu": torch.nn.functional.gelu,
    }[kind](x2)
    (ref * w).sum().backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None and x2.grad is not None
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def test_quantized_model_runs_the_chosen_kernels() -> None:
    model = tiny_vit()
    images = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    cal = Calibration(model, images)
    kernels = {"softmax": "shift", "layernorm": "poly", "gelu": "shift"}
    cfg = QuantConfig.uniform("W8A8", nonlinear="int", kernels=kernels)
    q = quantize_model(model, cfg, cal)
    found = {(m.kind, m.variant) for m in q.modules() if isinstance(m, IntNonlinear)}
    assert found == set(kernels.items())
    with torch.no_grad():
        out, poly = (
            q(images),
            quantize_model(model, QuantConfig.uniform("W8A8", nonlinear="int"), cal)(images),
        )
    assert not torch.equal(out, poly)
    # with float non-linear operators the kernels are the hardware's choice alone
    flt = QuantConfig.uniform("W8A8", kernels=kernels)
    assert not any(isinstance(m, IntNonlinear) for m in quantize_model(model, flt, cal).modules())
    assert len(nonlinear_modules(model)) > 0


def test_proxy_terms_are_kept_per_variant() -> None:
    """The poly terms keep their key (cached term files stay valid); a space's variants are all
    precomputed, each scored config sums its own."""
    model = tiny_vit()
    images = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    lin = LinearizedKL(model, images, Calibration(model, images))
    cfg = QuantConfig.uniform("W8A8", nonlinear="int")
    lin.precompute((8,), (8,), (0.0,), cfg, kernels={"softmax": ("poly", "shift")})
    methods = {(k[4], k[3]) for k in lin._memo if k[4] in KERNELS}
    assert methods == {("softmax", "int"), ("softmax", "int-shift"), ("layernorm", "int"), ("gelu", "int")}
    n = len(lin._memo)
    shift = QuantConfig.uniform("W8A8", nonlinear="int", kernels={"softmax": "shift"})
    assert lin.score(shift) != lin.score(cfg) and len(lin._memo) == n


# ----------------------------------------------------------------------------- search space


def _space(tmp_path: Path, kernels: str, base: Path = DEFAULT_SPACE) -> Path:
    text = base.read_text()
    head, tail = text.split("  fixed_layers:", 1)
    path = tmp_path / f"space_{abs(hash(kernels))}.yaml"
    path.write_text(head + kernels + "  fixed_layers:" + tail)
    return path


def test_fingerprint_of_spaces_without_kernels_is_unchanged(tmp_path: Path) -> None:
    """The value before the kernel choice existed (existing studies resume)."""
    assert load_space(DEFAULT_SPACE).fingerprint() == "733f3db29fa39160"
    with_key = load_space(_space(tmp_path, "  kernels: {softmax: [poly, shift]}\n"))
    assert with_key.fingerprint() != "733f3db29fa39160"


def test_choice_flows_from_space_to_both_configs(tmp_path: Path, mnist_workload: Workload) -> None:
    text = "  kernels: {softmax: [poly, shift], layernorm: shift, gelu: [shift, poly]}\n"
    space = load_space(_space(tmp_path, text))
    assert dict(space.quant.kernels) == {
        "softmax": ("poly", "shift"),
        "layernorm": ("shift",),
        "gelu": ("shift", "poly"),
    }
    layers = mnist_workload.layer_names()
    dev = load_device("pynq_z2")
    seen = set()
    for seed in range(12):
        trial = RandomTrial(seed)
        params = space.suggest(trial, layers)
        assert {k for k in params if k.startswith("q.kernel.")} == {kernel_param(k) for k in NONLINEAR_KINDS}
        cand = space.decode(params, layers)
        chosen = {k: params[kernel_param(k)] for k in NONLINEAR_KINDS}
        assert dict(cand.quant.kernels) == chosen == dict(cand.accel.nonlinear_kernels)
        assert chosen["layernorm"] == "shift"
        rep = evaluate(mnist_workload, cand.accel, dev)
        coef = load_coefficients()
        bits = nonlinear_row_bits(mnist_workload)
        for kind, variant in chosen.items():
            unit = unit_resources(
                kind, dev.synth_family, coef, cand.accel.nonlinear_lanes, bits[kind], variant=variant
            )
            assert (unit.dsp == 0) == (variant == "shift")
        if all(v == "shift" for v in chosen.values()):
            assert rep.nonlinear_resources.dsp == 0
        seen.add(tuple(chosen.values()))
        # hardware-only: the kernels are drawn too and override the fixed quantization's
        hw_params = space.suggest(RandomTrial(seed), layers, quantize=False)
        assert not any(k.startswith("q.") and not k.startswith("q.kernel.") for k in hw_params)
        fixed = space.decode(hw_params, layers, QuantConfig.uniform("W8A8"))
        assert dict(fixed.quant.kernels) == dict(fixed.accel.nonlinear_kernels)
        assert fixed.accel.nonlinear_kernels["softmax"] == hw_params["q.kernel.softmax"]
    assert len(seen) > 1


def test_space_without_kernels_keeps_the_fixed_quantizations(mnist_workload: Workload) -> None:
    space = load_space(DEFAULT_SPACE)
    layers = mnist_workload.layer_names()
    params = space.suggest(RandomTrial(0), layers, quantize=False)
    assert not any(k.startswith("q.") for k in params)
    fixed = QuantConfig.uniform("W8A8", kernels=ALL_SHIFT)
    cand = space.decode(params, layers, fixed)
    assert cand.quant == fixed and dict(cand.accel.nonlinear_kernels) == ALL_SHIFT
    plain = space.decode(space.suggest(RandomTrial(0), layers), layers)
    assert plain.quant.all_poly and "nonlinear_kernels" not in plain.accel.to_dict()


def test_deit_space_searches_both_variants() -> None:
    space = load_space(DEIT_SPACE)
    assert dict(space.quant.kernels) == dict.fromkeys(NONLINEAR_KINDS, ("poly", "shift"))


@pytest.mark.parametrize(
    ("kernels", "needle"),
    [
        (
            "  kernels: {softmax: [poly, exp2]}\n",
            "quant.kernels.softmax: 'exp2' not allowed (allowed: poly, shift)",
        ),
        (
            "  kernels: {tanh: shift}\n",
            "quant.kernels: unknown key 'tanh' (allowed: softmax, layernorm, gelu)",
        ),
        ("  kernels: {gelu: []}\n", "quant.kernels.gelu: empty list"),
        ("  kernels: shift\n", "quant.kernels: expected a mapping"),
    ],
)
def test_bad_space_kernels_are_one_line(tmp_path: Path, kernels: str, needle: str) -> None:
    with pytest.raises(UserError) as err:
        load_space(_space(tmp_path, kernels))
    assert needle in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- exports


def test_exported_units_are_the_chosen_variant(tmp_path: Path, mnist_workload: Workload) -> None:
    space = load_space(_space(tmp_path, "  kernels: {softmax: shift, gelu: shift}\n"))
    layers = mnist_workload.layer_names()
    cand = space.decode(space.suggest(RandomTrial(1), layers), layers)
    units = {u[0]: u for u in nonlinear_units_for(cand, mnist_workload)}
    assert {k: u[3] for k, u in units.items()} == {"softmax": "shift", "layernorm": "poly", "gelu": "shift"}
    texts = {v: nonlinear_verilog("gelu", 1, 0, v) for v in VARIANTS}
    assert texts["poly"] != texts["shift"]
    assert all("module codesign_gelu" in t for t in texts.values())
    assert " * " in texts["poly"] and " * " not in texts["shift"]  # the shift lane multiplies nothing
    assert list(itertools.chain(units)) == ["gelu", "layernorm", "softmax"]
