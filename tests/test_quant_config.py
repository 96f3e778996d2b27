"""Precision strings, LayerQuant / QuantConfig validation and JSON round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codesign.errors import UserError
from codesign.quant import LayerQuant, QuantConfig, parse_precision


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("W4A8", LayerQuant(4, 8, 0.0)),
        ("w8a8", LayerQuant(8, 8, 0.0)),
        ("W4A8P0.5", LayerQuant(4, 8, 0.5)),
        ("W4A8p.25", LayerQuant(4, 8, 0.25)),
        ("pot4", LayerQuant(4, 32, 1.0)),
        ("POT4A8", LayerQuant(4, 8, 1.0)),
        ("W8", LayerQuant(8, 32, 0.0)),
        ("fp32", LayerQuant(32, 32, 0.0)),
        ("W32A32", LayerQuant(32, 32, 0.0)),
    ],
)
def test_parse_precision(text: str, expected: LayerQuant) -> None:
    assert parse_precision(text) == expected


@pytest.mark.parametrize("text", ["", "W", "A8", "W4A", "int8", "W1A8", "W4A40", "W4A8P1.5", "W16A8P0.5"])
def test_parse_precision_rejects(text: str) -> None:
    with pytest.raises(UserError) as exc:
        parse_precision(text)
    assert "\n" not in str(exc.value)


lqs = st.builds(
    LayerQuant,
    st.sampled_from([*range(2, 9)]),
    st.sampled_from([*range(2, 17), 32]),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)


@given(lqs)
def test_to_string_roundtrip(lq: LayerQuant) -> None:
    assert parse_precision(lq.to_string()) == lq


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight_bits": 1, "act_bits": 8},
        {"weight_bits": 8, "act_bits": 33},
        {"weight_bits": 8.0, "act_bits": 8},
        {"weight_bits": 4, "act_bits": 8, "pot_ratio": -0.1},
        {"weight_bits": 32, "act_bits": 8, "pot_ratio": 0.5},
    ],
)
def test_layer_quant_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(UserError):
        LayerQuant(**kwargs)  # type: ignore[arg-type]


def test_config_overrides_and_matmul_ratio() -> None:
    cfg = QuantConfig(parse_precision("W4A8P0.5"), {"head": "W8A8", "blocks.0.attn.qk": "W6A6"})
    assert cfg.for_layer("head") == LayerQuant(8, 8)
    assert cfg.for_layer("blocks.0.mlp.fc1") == LayerQuant(4, 8, 0.5)
    assert cfg.for_layer("blocks.0.attn.qk") == LayerQuant(6, 6)
    # the default's PoT ratio is a weight-layer choice: qk/sv fall back with ratio 0
    assert cfg.for_layer("blocks.1.attn.sv") == LayerQuant(4, 8, 0.0)
    with pytest.raises(UserError, match="pot_ratio must be 0"):
        QuantConfig(LayerQuant(8, 8), {"blocks.0.attn.sv": LayerQuant(4, 8, 0.5)})


def test_config_json_roundtrip_and_hash() -> None:
    cfg = QuantConfig(
        LayerQuant(8, 8), {"blocks.1.mlp.fc2": LayerQuant(3, 6, 0.75)}, "percentile", "max", "log2"
    )
    back = QuantConfig.from_json(cfg.to_json())
    assert back == cfg and hash(back) == hash(cfg)
    assert {cfg: 1}[back] == 1
    assert QuantConfig.uniform("W8A8") != QuantConfig.uniform("W8A6")
    with pytest.raises(TypeError):
        cfg.layers["head"] = LayerQuant(8, 8)  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "invalid JSON"),
        ('{"layers": {}}', "missing key 'default'"),
        ('{"default": "W8A8", "extra": 1}', "unknown keys"),
        ('{"default": "W8A8", "layers": {"head": "W9Z"}}', "layers.head"),
        ('{"default": {"weight_bits": 8}}', "default"),
        ('{"default": "W8A8", "softmax": "cubic"}', "softmax"),
    ],
)
def test_config_from_json_errors(text: str, match: str) -> None:
    with pytest.raises(UserError, match=match) as exc:
        QuantConfig.from_json(text)
    assert "\n" not in str(exc.value)


def test_layered_quant_json_reads_as_the_config_it_was_written_from() -> None:
    """A quant.json in the Model / LayerName layout README documents (without the internal
    ``config`` block) reads back as the same config; ``--hw-only FILE`` accepts both."""
    import json

    from codesign.export import quant_document

    layers = ("patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.attn.qk", "head")
    cfg = QuantConfig(
        LayerQuant(6, 8, 0.0),
        {"blocks.0.attn.qkv": LayerQuant(4, 8, 0.5), "head": LayerQuant(8, 8, 0.0)},
        act_calibration="max",
    )
    doc = quant_document(cfg, layers, "deit_tiny_patch16_224", {})
    layered = {k: v for k, v in doc.items() if k != "config"}
    back = QuantConfig.from_json(json.dumps(layered))
    assert all(back.for_layer(n) == cfg.for_layer(n) for n in layers)
    assert back.act_calibration == "max" and back.default == cfg.default
    assert QuantConfig.from_json(json.dumps(doc)) == cfg
    with pytest.raises(UserError, match=r"LayerName\.head: missing key 'act_bits'"):
        layered["LayerName"] = {"head": {"weight_bits": 8}}
        QuantConfig.from_json(json.dumps(layered), "q.json")
