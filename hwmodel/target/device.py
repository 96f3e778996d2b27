"""FPGA devices: YAML files in ``hwmodel/target/devices`` (or a user path) loaded into a frozen Device."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hwmodel.base.errors import UserError
from hwmodel.base.yamlio import read_yaml

DEVICES_DIR = Path(__file__).parent / "devices"
DSP_TYPES = ("DSP48E1", "DSP48E2")
#: Device family → (``synth_xilinx -family`` of Yosys, DSP slice of the family).
FAMILIES: dict[str, tuple[str, str]] = {
    "zynq7000": ("xc7", "DSP48E1"),
    "artix7": ("xc7", "DSP48E1"),
    "kintex7": ("xc7", "DSP48E1"),
    "virtex7": ("xc7", "DSP48E1"),
    "spartan7": ("xc7", "DSP48E1"),
    "kintex_ultrascale": ("xcu", "DSP48E2"),
    "virtex_ultrascale": ("xcu", "DSP48E2"),
    "zynq_ultrascale_plus": ("xcup", "DSP48E2"),
    "kintex_ultrascale_plus": ("xcup", "DSP48E2"),
    "virtex_ultrascale_plus": ("xcup", "DSP48E2"),
}
#: Yosys ``synth_xilinx -family`` → DSP slice; the calibration synthesises for each of them.
SYNTH_FAMILIES: dict[str, str] = {synth: dsp for synth, dsp in FAMILIES.values()}


@dataclass(frozen=True)
class Device:
    """One FPGA part on a board: fabric resources, DSP slice type, clocks and DRAM bandwidth."""

    name: str
    part: str
    family: str
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    dsp_type: str
    default_freq_mhz: float
    max_freq_mhz: float
    offchip_bandwidth_gbps: float

    @property
    def synth_family(self) -> str:
        """The family as Yosys's ``synth_xilinx -family`` names it (``xc7``, ``xcu``, ``xcup``)."""
        return FAMILIES[self.family][0]

    def bytes_per_cycle(self, freq_mhz: float) -> float:
        """Off-chip bytes transferred per accelerator clock cycle at ``freq_mhz``."""
        return self.offchip_bandwidth_gbps * 1e9 / (freq_mhz * 1e6)


_INT_KEYS = ("lut", "ff", "bram36", "uram", "dsp")
_FLOAT_KEYS = ("default_freq_mhz", "max_freq_mhz", "offchip_bandwidth_gbps")
_STR_KEYS = ("name", "part", "family", "dsp_type")


def known_devices() -> list[str]:
    """Names of the devices shipped with hwmodel."""
    return sorted(p.stem for p in DEVICES_DIR.glob("*.yaml"))


def parse_device(raw: Any, source: str) -> Device:
    """A Device from a mapping of its keys (a device YAML, or the `device` block of an exported
    accelerator.json); a one-line :class:`UserError` naming ``source`` and the key otherwise."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of device keys, got {type(raw).__name__}")
    allowed = {f.name for f in fields(Device)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise UserError(f"{source}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    missing = [k for k in sorted(allowed) if k not in raw]
    if missing:
        raise UserError(f"{source}: missing key '{missing[0]}'")
    values: dict[str, Any] = {}
    for key in _STR_KEYS:
        if not isinstance(raw[key], str) or not raw[key]:
            raise UserError(f"{source}: key '{key}' must be a non-empty string")
        values[key] = raw[key]
    for key in _INT_KEYS:
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise UserError(f"{source}: key '{key}' must be a non-negative integer, got {v!r}")
        values[key] = v
    for key in _FLOAT_KEYS:
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise UserError(f"{source}: key '{key}' must be a positive number, got {v!r}")
        values[key] = float(v)
    if values["family"] not in FAMILIES:
        raise UserError(f"{source}: key 'family' is {values['family']!r} (allowed: {', '.join(FAMILIES)})")
    if values["dsp_type"] not in DSP_TYPES:
        raise UserError(
            f"{source}: key 'dsp_type' is {values['dsp_type']!r} (allowed: {', '.join(DSP_TYPES)})"
        )
    family, dsp_type = values["family"], values["dsp_type"]
    family_dsp = FAMILIES[family][1]
    if dsp_type != family_dsp:
        raise UserError(f"{source}: key 'dsp_type' is {dsp_type!r} but family {family!r} has {family_dsp}")
    if values["default_freq_mhz"] > values["max_freq_mhz"]:
        raise UserError(f"{source}: key 'default_freq_mhz' exceeds 'max_freq_mhz'")
    if values["lut"] == 0 or values["ff"] == 0:
        raise UserError(f"{source}: keys 'lut' and 'ff' must be positive")
    return Device(**values)


def load_device(name_or_path: str | Path) -> Device:
    """Load a shipped device by name (``zcu102``) or any device YAML by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.exists()):
        path = DEVICES_DIR / f"{text.lower()}.yaml"
        if not path.exists():
            raise UserError(
                f"unknown device '{text}' (known: {', '.join(known_devices())}; or a path to a YAML file)"
            )
    return parse_device(read_yaml(path, "device"), str(path))
