"""The host driver of an exported design (PYNQ-style): load ``program.bin`` and ``params.bin`` into
the accelerator's DRAM, then per image write its input codes, start the program through the
AXI4-Lite registers (:data:`hwmodel.arch.program.REGISTERS`), wait for done and read the logits.

The driver talks to a :class:`Device`: DRAM the host can read and write (``mem``, as PYNQ's
``allocate`` buffers) and the register file. :class:`ReferenceDevice` is the program's reference
semantics (:func:`codesign.program.execute`) behind the register map: what the accelerator's RTL is
held to, and what the driver is tested against until a simulated top-level takes its place.

Usage::

    acc = Accelerator(ProgramFiles.read(Path("runs/default/designs/12")))
    logits = acc.infer(images)          # float64 [B, classes]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from codesign.errors import UserError
from codesign.program._compile import PARAMS_FILE, PROGRAM_FILE, PROGRAM_JSON
from codesign.program._execute import MemoryFault, execute
from codesign.quant._integer import input_codes, patch_rows
from hwmodel.arch.program import (
    CTRL_START,
    REGISTERS,
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_IDLE,
    Operand,
    RegisterDevice,
    RunRegisters,
    read_operand,
    write_operand,
)

#: Register polls before :meth:`Accelerator.run_rows` gives up on a run.
MAX_POLLS = 1_000_000


class Device(Protocol):
    """What the driver needs of an accelerator: its DRAM and its registers."""

    mem: npt.NDArray[np.uint8]

    def write_reg(self, offset: int, value: int) -> None: ...

    def read_reg(self, offset: int) -> int: ...


class ReferenceDevice(RegisterDevice):
    """The program's reference semantics behind the register map: a start runs the program at
    ``PROG_BASE`` on :attr:`mem` (:func:`codesign.program.execute`) and sets ``STATUS``."""

    def run(self, program_base: int) -> RunRegisters:
        try:
            ops = execute(self.mem, program_base)
        except MemoryFault:
            return RunRegisters(STATUS_IDLE | STATUS_ERROR, 0, 0)
        return RunRegisters(STATUS_IDLE | STATUS_DONE, ops, 0)


@dataclass(frozen=True)
class ProgramFiles:
    """An exported program: ``program.json`` (as read), ``program.bin`` and ``params.bin``."""

    doc: dict[str, Any]
    program: bytes
    params: bytes

    @classmethod
    def read(cls, folder: Path) -> ProgramFiles:
        """The three files of ``folder`` (one-line :class:`UserError` when one is missing or bad)."""
        paths = [folder / name for name in (PROGRAM_JSON, PROGRAM_FILE, PARAMS_FILE)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise UserError(
                f"{folder}: no {', '.join(missing)} (a design the integer program cannot run has none: "
                "its quant.json's accuracy.integer says why)"
            )
        try:
            doc = json.loads(paths[0].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{paths[0]}: not a program.json ({exc})") from exc
        if isinstance(doc, dict) and set(doc) == {"reason"}:
            raise UserError(f"{folder}: the design has no accelerator program ({doc['reason']})")
        keys = {"program_base", "params", "regions", "input", "output"}
        if not isinstance(doc, dict) or not keys <= set(doc):
            raise UserError(f"{paths[0]}: not a program.json that codesign exports")
        return cls(doc, paths[1].read_bytes(), paths[2].read_bytes())

    def region(self, name: str) -> dict[str, Any]:
        for r in self.doc["regions"]:
            if r["name"] == name:
                return dict(r)
        raise UserError(f"program.json: no region {name!r}")


def _operand(region: dict[str, Any]) -> Operand:
    """A ``program.json`` region as an operand over its rows (``row_stride`` codes apart; a file
    without it: rows dense)."""
    stride = int(region.get("row_stride", region["shape"][-1]))
    return Operand(int(region["addr"]), stride, 0, int(region["bits"]), int(region["signed"]))


class Accelerator:
    """A loaded design: :meth:`infer` runs images through it (one program run per image)."""

    def __init__(self, files: ProgramFiles, device: Device | None = None) -> None:
        self.files = files
        self.device = device if device is not None else ReferenceDevice(int(files.doc["dram_bytes"]))
        self.input = files.region(files.doc["input"]["region"])
        self.output = files.region(files.doc["output"]["region"])
        self.unit = np.asarray(files.doc["output"]["unit"], dtype=np.float64)
        self.load()

    def load(self) -> None:
        """Write the program and the parameters into the device's DRAM."""
        mem = self.device.mem
        base, params = int(self.files.doc["program_base"]), int(self.files.doc["params"]["addr"])
        for at, data in ((base, self.files.program), (params, self.files.params)):
            if at + len(data) > mem.size:
                raise UserError(f"the design needs {at + len(data)} bytes of DRAM, the device has {mem.size}")
            mem[at : at + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def rows(self, images: torch.Tensor) -> torch.Tensor:
        """Float images ``[B, C, H, W]`` → the patch embedding's input rows (the host's part)."""
        spec = self.files.doc["input"]
        patch = spec["patch"]
        return patch_rows(input_codes(images, float(spec["scale"]), int(spec["bits"])), (patch[0], patch[1]))

    def run_rows(self, rows: torch.Tensor) -> npt.NDArray[np.int64]:
        """One image's input rows ``[patches, K]`` → the head's accumulators ``[classes]``."""
        mem, reg = self.device.mem, REGISTERS
        shape = tuple(self.input["shape"])
        if tuple(rows.shape) != shape:
            raise UserError(f"input of {tuple(rows.shape)} does not fit the design's {list(shape)}")
        try:
            write_operand(mem, _operand(self.input), rows.numpy()[None])
        except ValueError as exc:
            raise UserError(f"input codes: {exc}") from exc
        base = int(self.files.doc["program_base"])
        self.device.write_reg(reg["PROG_BASE_LO"], base & 0xFFFFFFFF)
        self.device.write_reg(reg["PROG_BASE_HI"], base >> 32)
        self.device.write_reg(reg["CTRL"], CTRL_START)
        for _ in range(MAX_POLLS):
            status = self.device.read_reg(reg["STATUS"])
            if status & STATUS_ERROR:
                raise UserError("the accelerator stopped on a fault (status error)")
            if status & STATUS_DONE:
                break
        else:
            raise UserError(f"the accelerator did not finish within {MAX_POLLS} status polls")
        rows_out, cols_out = self.output["shape"]
        return read_operand(mem, _operand(self.output), (1, rows_out, cols_out)).reshape(-1)

    def accumulators(self, images: torch.Tensor) -> npt.NDArray[np.int64]:
        """The head's accumulators of each image ``[B, classes]``."""
        return np.stack([self.run_rows(r) for r in self.rows(images)])

    def infer(self, images: torch.Tensor) -> npt.NDArray[np.float64]:
        """Float logits ``[B, classes]``: the accumulators times their unit (the output boundary)."""
        return self.accumulators(images) * self.unit
