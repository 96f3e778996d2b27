"""``python -m codesign.rtlsim runs/<study> --trial N [--images K] [--json]``: run an exported design
on its whole accelerator top-level in Verilator.

The design's ``codesign_accelerator`` (:mod:`hwmodel.rtl.accelerator`, built for the design's
engine and its program) runs the exported ``program.bin`` / ``params.bin`` on the first K test
images (default 1) through the host driver (:class:`codesign.program.driver.Accelerator`, the
AXI4-Lite registers) with a DRAM model of the design's device in the testbench (the model's DRAM
latency at the design's clock; its bandwidth). Per image the head's accumulators are compared
with the integer-only model's (:func:`codesign.quant.integer_model` of the design's
``model_int.pt``): bit-exact or not. Printed: images, bit-exact images, the hardware's top-1,
simulated cycles per image (the ``CYCLES`` register: start to done) against the model's latency
(``accelerator.json``), and the seconds of simulation. ``--json``: ``images``,
``bit_exact_images``, ``top1``, ``sim_cycles_per_image``, ``model_cycles_per_image``,
``sim_s`` (and ``build_s``).

``--synth``: instead of simulating, synthesise the design's top-level (with its DSP primitives)
with the pinned Yosys for the device's family and print its LUT, FF, DSP, BRAM36 and LUT-RAM
against the model's totals for the design (``accelerator.json``'s ``resources``); ``--json``:
``yosys`` and ``model`` (each ``lut``, ``ff``, ``dsp``, ``bram36``; Yosys also ``lutram``),
``synth_s``. ``--units`` (with ``--synth``): each unit of the top synthesised alone too
(:func:`hwmodel.rtl.accelerator.unit_verilogs`: engine, GEMM core, epilogue, non-linear unit,
sequencer, interconnect), a line each (``units`` in JSON). A design without a program (a float
layer or ``nonlinear: float``: the integer program cannot run it) is one line, exit 2. Needs
Debian's ``verilator``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codesign.errors import UserError
from codesign.export import accelerator_spec_for
from codesign.integer_top1 import first_images
from codesign.program.driver import Accelerator, ProgramFiles
from codesign.quant import integer_model, load_int_model, on_cpu
from codesign.run_folder import design_dir, load_run_evaluator, read_summary
from hwmodel.base.cli import command_parser, positive_int, run_main
from hwmodel.base.yamlio import read_json
from hwmodel.cost.coefficients import load_coefficients
from hwmodel.model.document import DesignFile, read_design, recorded_workload
from hwmodel.rtl.accelerator import AcceleratorSpec, accelerator_verilog, unit_verilogs
from hwmodel.rtl.verilator import VerilatorDevice, VerilatorSim, verilator_available
from hwmodel.target.device import Device

COMMAND = "codesign.rtlsim"


@dataclass(frozen=True)
class RtlSim:
    """A design's run on its simulated top-level (module docstring)."""

    images: int
    bit_exact_images: int
    top1: float
    sim_cycles_per_image: float
    model_cycles_per_image: int
    sim_s: float
    build_s: float


def _design(folder: Path) -> DesignFile:
    doc_path = folder / "accelerator.json"
    return read_design(doc_path, read_json(doc_path, "accelerator"))


def design_sim(folder: Path, files: ProgramFiles) -> tuple[VerilatorSim, int]:
    """The Verilator simulation of design ``folder``'s top-level (its DRAM as the device's) and
    the model's latency in cycles."""
    design = _design(folder)
    spec = accelerator_spec_for(files.program, recorded_workload(design), design.config, design.device)
    latency, bandwidth = testbench_dram(design.config.freq_mhz, design.device)
    sim = VerilatorSim(accelerator_verilog(spec), spec.data_bits, latency, bandwidth)
    return sim, int(design.predicted["latency_cycles"])


def testbench_dram(freq_mhz: float, device: Device) -> tuple[int, float]:
    """The testbench DRAM of a design at ``freq_mhz``: the model's DRAM latency (cycles, at least
    1) and the device's bandwidth (bytes a cycle)."""
    latency = max(1, load_coefficients().dram_latency_cycles(freq_mhz))
    return latency, device.bytes_per_cycle(freq_mhz)


def rtlsim(run_dir: Path, trial: int, n_images: int) -> RtlSim:
    """Design ``trial`` of ``run_dir`` on the first ``n_images`` test images (module docstring)."""
    if not verilator_available():
        raise UserError("codesign.rtlsim needs Verilator (Debian: apt-get install verilator)")
    info = read_summary(run_dir)
    folder = design_dir(run_dir, trial, info)
    files = ProgramFiles.read(folder)
    evaluator = load_run_evaluator(run_dir, info)
    imodel = integer_model(load_int_model(folder / "model_int.pt", on_cpu(evaluator.model)))
    t0 = time.perf_counter()
    sim, model_cycles = design_sim(folder, files)
    sim.build()
    build_s = time.perf_counter() - t0
    device = VerilatorDevice(sim, int(files.doc["dram_bytes"]))
    acc = Accelerator(files, device)
    test = evaluator.splits.test
    images = torch.cat(list(first_images(test, n_images, evaluator.batch_size)))
    labels = test.labels[: images.shape[0]]
    expected = imodel.accumulators(images).numpy()
    exact, cycles, right = 0, 0, 0
    t0 = time.perf_counter()
    for i, rows in enumerate(acc.rows(images)):
        got = acc.run_rows(rows)
        assert device.last is not None
        cycles += device.last.cycles_register
        exact += int(np.array_equal(got, expected[i]))
        right += int(int(np.argmax(got)) == int(labels[i]))
    n = int(images.shape[0])
    return RtlSim(
        images=n,
        bit_exact_images=exact,
        top1=100.0 * right / n,
        sim_cycles_per_image=cycles / n,
        model_cycles_per_image=model_cycles,
        sim_s=time.perf_counter() - t0,
        build_s=build_s,
    )


@dataclass(frozen=True)
class TopSynth:
    """Yosys on a whole top-level against the model's totals (``--synth``; also
    ``codesign.layersim --synth``)."""

    yosys: dict[str, float]
    model: dict[str, float]
    family: str
    synth_s: float
    yosys_version: str
    #: ``--units``: each unit of the top synthesised alone (:func:`hwmodel.rtl.accelerator.unit_verilogs`),
    #: by name: ``lut``, ``ff``, ``dsp``, ``bram36``, ``lutram``, ``synth_s``
    units: dict[str, dict[str, float]] = field(default_factory=dict)


#: the resources ``--synth`` compares (Yosys's LUT-RAM primitives are listed beside them)
SYNTH_KEYS = ("lut", "ff", "dsp", "bram36")


def top_synthesis(
    spec: AcceleratorSpec,
    model: Mapping[str, float],
    family: str,
    timeout_s: float = 4 * 3600.0,
    units: bool = False,
) -> TopSynth:
    """Yosys (``family``) on the top-level ``spec`` with its DSP primitives, beside ``model``'s
    totals (``lut``, ``ff``, ``dsp``, ``bram36``); ``units``: each unit alone too."""
    from hwmodel.rtl.verilog import synthesize_verilog

    def figures(verilog: str) -> tuple[dict[str, float], float, str]:
        res = synthesize_verilog(verilog, timeout_s=timeout_s, family=family)
        got = {"lut": res.lut, "ff": res.ff, "dsp": res.dsp, "bram36": res.bram36, "lutram": res.lutram}
        return {k: float(v) for k, v in got.items()}, res.synth_seconds, res.yosys_version

    top, seconds, version = figures(accelerator_verilog(spec, primitives=True))
    alone = {}
    for name, verilog in (unit_verilogs(spec) if units else {}).items():
        got, unit_s, _ = figures(verilog)
        alone[name] = {**got, "synth_s": unit_s}
    return TopSynth(
        yosys=top,
        model={k: float(model[k]) for k in SYNTH_KEYS},
        family=family,
        synth_s=seconds,
        yosys_version=version,
        units=alone,
    )


def rtlsynth(run_dir: Path, trial: int, units: bool = False) -> TopSynth:
    """Yosys on design ``trial``'s top-level (``--synth``, module docstring); ``units``: each
    unit alone too (``--units``)."""
    folder = design_dir(run_dir, trial, read_summary(run_dir))
    files = ProgramFiles.read(folder)
    design = _design(folder)
    spec = accelerator_spec_for(files.program, recorded_workload(design), design.config, design.device)
    return top_synthesis(spec, design.predicted["resources"], design.device.synth_family, units=units)


def synth_line(r: TopSynth) -> str:
    """Yosys beside the model, in one line."""
    cols = "; ".join(
        f"{k.upper()} {r.yosys[k]:,.0f} vs {r.model[k]:,.0f} ({r.yosys[k] / r.model[k]:.2f} x)"
        if r.model[k]
        else f"{k.upper()} {r.yosys[k]:,.0f} vs 0"
        for k in SYNTH_KEYS
    )
    lines = [
        f"Yosys {r.yosys_version} ({r.family}) on the whole top-level against the model: {cols}; "
        f"LUT-RAM {r.yosys['lutram']:,.0f}; synthesis {r.synth_s:.0f} s"
    ]
    for name, u in r.units.items():
        lines.append(
            f"  {name:<13} LUT {u['lut']:>8,.0f}  FF {u['ff']:>8,.0f}  DSP {u['dsp']:>5,.0f}  "
            f"BRAM36 {u['bram36']:>5g}  LUT-RAM {u['lutram']:>6,.0f}"
        )
    return "\n".join(lines)


def _line(trial: int, r: RtlSim) -> str:
    ratio = r.sim_cycles_per_image / r.model_cycles_per_image
    return (
        f"trial {trial}: {r.bit_exact_images} / {r.images} images bit-exact against the integer model, "
        f"top-1 {r.top1:.2f} %; {r.sim_cycles_per_image:,.0f} simulated cycles an image, model "
        f"{r.model_cycles_per_image:,} ({ratio:.2f} x); simulation {r.sim_s:.1f} s (build {r.build_s:.1f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("run_dir", help="a run folder, e.g. runs/default")
    p.add_argument("--trial", type=int, required=True, help="the exported design to simulate")
    p.add_argument("--images", type=positive_int, default=1, help="the first N test images (default 1)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument(
        "--synth",
        action="store_true",
        help="synthesise the top-level with Yosys instead (against the model's totals)",
    )
    p.add_argument("--units", action="store_true", help="with --synth: each unit of the top alone too")
    args = p.parse_args(argv)
    if args.units and not args.synth:
        raise UserError("--units goes with --synth")
    if args.synth:
        synth = rtlsynth(Path(args.run_dir), args.trial, units=args.units)
        print(
            json.dumps(asdict(synth), indent=2) if args.json else f"trial {args.trial}: {synth_line(synth)}"
        )
        return 0
    result = rtlsim(Path(args.run_dir), args.trial, args.images)
    out: dict[str, Any] = asdict(result)
    print(json.dumps(out, indent=2) if args.json else _line(args.trial, result))
    return 0 if result.bit_exact_images == result.images else 1


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
