"""Lanes per non-linear kind: accelerator config, evaluation, search space and exports follow them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_space_study import RandomTrial

from codesign.errors import UserError
from codesign.export import nonlinear_units_for
from codesign.space import lanes_param, load_space
from hwmodel.arch.config import NONLINEAR_KINDS, AcceleratorConfig
from hwmodel.cost.coefficients import load_coefficients
from hwmodel.cost.nonlinear import unit_resources
from hwmodel.model.document import SCHEMA_PATH, load_config
from hwmodel.model.evaluation import evaluate, nonlinear_row_bits
from hwmodel.target.device import load_device
from hwmodel.target.workload import Workload

ROOT = Path(__file__).parents[1]
DEIT_SPACE = ROOT / "search_spaces" / "deit_zcu102.yaml"


def _config(**kw: object) -> AcceleratorConfig:
    return AcceleratorConfig(freq_mhz=100.0, rows=4, cols=8, **kw)  # type: ignore[arg-type]


def test_lanes_for_each_kind_and_round_trip(tmp_path: Path) -> None:
    cfg = _config(nonlinear_lanes=4, nonlinear_kind_lanes={"softmax": 16})
    assert [cfg.lanes_for(k) for k in ("softmax", "layernorm", "gelu")] == [16, 4, 4]
    assert dict(cfg.lanes_key) == {"gelu": 4, "layernorm": 4, "softmax": 16}
    path = tmp_path / "accel.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert load_config(path) == cfg
    assert "nonlinear_kind_lanes" not in _config().to_dict()  # existing documents unchanged
    schema = json.loads(SCHEMA_PATH.read_text())["properties"]["config"]["properties"]
    assert set(schema["nonlinear_kind_lanes"]["properties"]) == set(NONLINEAR_KINDS)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"sofmax": 8}, "unknown key 'sofmax'"),
        ({"gelu": 0}, "key 'gelu' must be an integer"),
        ([8], "mapping"),
    ],
)
def test_bad_kind_lanes_are_one_line(tmp_path: Path, value: object, needle: str) -> None:
    path = tmp_path / "accel.json"
    path.write_text(json.dumps({**_config().to_dict(), "nonlinear_kind_lanes": value}))
    with pytest.raises(UserError, match=needle) as err:
        load_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_evaluate_prices_each_unit_with_its_lanes(mnist_workload: Workload) -> None:
    """Each unit's resources are its own lane count's; more softmax lanes hide more softmax."""
    dev, coef = load_device("pynq_z2"), load_coefficients()
    base = _config(nonlinear_lanes=2)
    wide = _config(nonlinear_lanes=2, nonlinear_kind_lanes={"softmax": 8})
    r_base, r_wide = (
        evaluate(mnist_workload, base, dev, detail=True),
        evaluate(mnist_workload, wide, dev, detail=True),
    )
    bits = nonlinear_row_bits(mnist_workload)
    per_kind = {k: unit_resources(k, dev.synth_family, coef, wide.lanes_for(k), b) for k, b in bits.items()}
    assert r_wide.nonlinear_resources.dsp == sum(u.dsp for u in per_kind.values())
    assert r_wide.nonlinear_resources.dsp > r_base.nonlinear_resources.dsp
    busy = {
        "base": {r.name: r.compute_cycles for r in r_base.layers if r.kind == "softmax"},
        "wide": {r.name: r.compute_cycles for r in r_wide.layers if r.kind == "softmax"},
    }
    assert all(busy["wide"][n] < busy["base"][n] for n in busy["base"])
    others = [r for r in r_wide.layers if r.kind in ("layernorm", "gelu")]
    assert others == [r for r in r_base.layers if r.kind in ("layernorm", "gelu")]
    assert r_wide.latency_cycles <= r_base.latency_cycles


def test_space_draws_lanes_per_kind(tmp_path: Path, mnist_workload: Workload) -> None:
    space = load_space(DEIT_SPACE)
    assert set(space.hardware.kind_lanes) == set(NONLINEAR_KINDS)
    layers = mnist_workload.layer_names()
    for seed in range(10):
        trial = RandomTrial(seed)
        params = space.suggest(trial, layers)
        accel = space.decode(params, layers).accel
        for kind in NONLINEAR_KINDS:
            assert accel.lanes_for(kind) == params[lanes_param(kind)]
        units = nonlinear_units_for(space.decode(params, layers), mnist_workload)
        assert {kind: lanes for kind, lanes, _b, _v in units} == {
            k: accel.lanes_for(k) for k in NONLINEAR_KINDS
        }
    # without the key the space, its parameters and its fingerprint are as before
    raw = yaml.safe_load(DEIT_SPACE.read_text())
    del raw["hardware"]["kind_lanes"]
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(raw))
    assert load_space(plain).hardware.kind_lanes == {}
    assert lanes_param("softmax") not in load_space(plain).suggest(RandomTrial(0), layers)
    raw["hardware"]["kind_lanes"] = {"gelu": [0]}
    plain.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"kind_lanes\.gelu"):
        load_space(plain)
