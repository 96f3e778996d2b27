"""Contract tests over every shipped device YAML, and bad-input errors of the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwmodel.base.errors import UserError
from hwmodel.target.device import DSP_TYPES, Device, known_devices, load_device

DATASHEET = {  # DESIGN.md §2
    "zcu102": (274_080, 548_160, 912, 2520, "DSP48E2"),
    "zcu104": (230_400, 460_800, 312, 1728, "DSP48E2"),
    "ultra96v2": (70_560, 141_120, 216, 360, "DSP48E2"),
    "pynq_z2": (53_200, 106_400, 140, 220, "DSP48E1"),
}


def test_the_four_boards_are_shipped() -> None:
    assert set(DATASHEET) <= set(known_devices())


@pytest.mark.parametrize("name", known_devices())
def test_every_device_is_valid(name: str) -> None:
    dev = load_device(name)
    assert isinstance(dev, Device)
    assert dev.name == name
    assert dev.dsp_type in DSP_TYPES
    assert dev.lut > 0 and dev.ff >= dev.lut and dev.bram36 > 0 and dev.dsp > 0
    assert 0 < dev.default_freq_mhz <= dev.max_freq_mhz
    assert dev.bytes_per_cycle(dev.default_freq_mhz) > 0
    if name in DATASHEET:
        assert (dev.lut, dev.ff, dev.bram36, dev.dsp, dev.dsp_type) == DATASHEET[name]


def test_device_is_frozen() -> None:
    dev = load_device("zcu102")
    with pytest.raises(AttributeError):
        dev.lut = 1  # type: ignore[misc]


def test_load_by_path_and_case_insensitive_name(tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "hwmodel" / "target" / "devices" / "zcu104.yaml"
    dst = tmp_path / "mine.yaml"
    dst.write_text(src.read_text().replace("name: zcu104", "name: my_board"))
    assert load_device(dst).name == "my_board"
    assert load_device("ZCU104").name == "zcu104"


def test_unknown_device_lists_known() -> None:
    with pytest.raises(UserError) as err:
        load_device("zcu999")
    msg = str(err.value)
    assert "zcu999" in msg and "zcu102" in msg and "pynq_z2" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("dsp: 1728", "dsp: -3"), "'dsp'"),
        (("dsp_type: DSP48E2", "dsp_type: DSP58"), "DSP48E1"),
        (("family: zynq_ultrascale_plus", "family: zynq_ultra"), "allowed: zynq7000"),
        (("dsp_type: DSP48E2", "dsp_type: DSP48E1"), "family 'zynq_ultrascale_plus' has DSP48E2"),
        (("lut: 230400", "lutt: 230400"), "unknown key 'lutt'"),
        (
            ("offchip_bandwidth_gbps: 19.2", "offchip_bandwidth_gbps: fast"),
            "offchip_bandwidth_gbps",
        ),
        (("uram: 96\n", ""), "missing key 'uram'"),
        (("name: zcu104", "name: [zcu104"), "not valid YAML"),
    ],
)
def test_malformed_yaml_names_file_and_key(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    src = Path(__file__).parents[1] / "hwmodel" / "target" / "devices" / "zcu104.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(src.read_text().replace(*edit))
    with pytest.raises(UserError) as err:
        load_device(bad)
    msg = str(err.value)
    assert str(bad) in msg and needle in msg and "\n" not in msg
