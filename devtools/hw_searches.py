"""The README's hardware-only searches, run and tabulated: ``python -m devtools.hw_searches``.

Runs each search of :data:`SEARCHES` (``python -m codesign.search --hw-only ... --no-rtl`` into a
scratch folder) and prints, per search, the best feasible Pareto design (highest FPS) with its
array, non-linear lanes and kernels, FPS, GOP/s, resources and the share of its latency the
non-linear ops leave exposed; then the DeiT-S W4A4 / W8A8 and W4A8P0.5 / W8A8 speed-ups.
``--only KEY`` runs one search; ``--json`` prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hwmodel.arch.config import NONLINEAR_KINDS as KINDS

#: key → (study, quantization, extra arguments): the commands of README's table.
SEARCHES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "deit_b_w4a8p": (
        "studies/deit_base_zcu102.yaml",
        "W4A8P0.5",
        ("--fps", "30", "--trials", "150", "--seed", "1"),
    ),
    "deit_b_w8a8": (
        "studies/deit_base_zcu102.yaml",
        "W8A8",
        ("--fps", "30", "--trials", "150", "--seed", "1"),
    ),
    "deit_s_w8a8": ("studies/deit_small_zcu102.yaml", "W8A8", ("--trials", "120", "--seed", "3")),
    "deit_s_w4a8p": ("studies/deit_small_zcu102.yaml", "W4A8P0.5", ("--trials", "120", "--seed", "3")),
    "deit_s_w4a4": ("studies/deit_small_zcu102.yaml", "W4A4", ("--trials", "120", "--seed", "3")),
}


def best_design(run_dir: Path) -> dict[str, Any]:
    """The feasible Pareto design with the highest FPS of a finished run folder."""
    with (run_dir / "pareto.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["feasible"] == "1" and r["pareto"] == "1"]
    if not rows:
        raise SystemExit(f"{run_dir}: no feasible Pareto design")
    row = max(rows, key=lambda r: float(r["fps"]))
    doc = json.loads((run_dir / "designs" / row["trial"] / "accelerator.json").read_text())
    cfg, pred = doc["config"], doc["predicted"]
    return {
        "trial": int(row["trial"]),
        "array": f"{cfg['array']['rows']} × {cfg['array']['cols']} ({cfg['array']['pot_cols']} PoT)",
        "packing": cfg["array"]["packing"],
        "lanes": {k: cfg.get("nonlinear_kind_lanes", {}).get(k, cfg["nonlinear_lanes"]) for k in KINDS},
        "kernels": cfg.get("nonlinear_kernels", {}),
        "fps": float(row["fps"]),
        "gops": float(row["gops"]),
        "dsp": int(row["dsp"]),
        "lut": int(row["lut"]),
        "ff": int(row["ff"]),
        "bram36": float(row["bram36"]),
        "nonlinear_exposed_share": pred["nonlinear_exposed_cycles"] / pred["latency_cycles"],
        "nonlinear_dsp": pred["nonlinear_resources"]["dsp"],
    }


def run_search(key: str, out: Path) -> dict[str, Any]:
    study, quant, extra = SEARCHES[key]
    cmd = [sys.executable, "-m", "codesign.search", "--study", study, "--hw-only", quant, *extra]
    cmd += ["--no-rtl", "--quiet", "--out", str(out / key)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    (run_dir,) = (p for p in (out / key).iterdir() if p.is_dir())
    return {"search": key, "command": " ".join(cmd[1:-2]), **best_design(run_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.hw_searches", description=__doc__)
    parser.add_argument("--only", choices=sorted(SEARCHES), action="append", help="run only this search")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    keys = args.only or list(SEARCHES)
    with tempfile.TemporaryDirectory(prefix="hw_searches_") as tmp:
        rows = [run_search(k, Path(tmp)) for k in keys]
    by = {r["search"]: r for r in rows}
    ratios = {
        f"{a}/{b}": by[a]["fps"] / by[b]["fps"]
        for a, b in (("deit_s_w4a4", "deit_s_w8a8"), ("deit_s_w4a8p", "deit_s_w8a8"))
        if a in by and b in by
    }
    if args.json:
        print(json.dumps({"rows": rows, "ratios": ratios}, indent=2))
        return 0
    for r in rows:
        units = " ".join(f"{k} {r['lanes'][k]} {r['kernels'].get(k, 'poly')}" for k in KINDS)
        print(
            f"{r['search']:<14} {r['array']:<22} {units:<46} {r['fps']:7.1f} FPS "
            f"{r['gops']:7.0f} GOP/s DSP {r['dsp']:5d} LUT {r['lut'] / 1e3:5.0f} k FF {r['ff'] / 1e3:5.0f} k "
            f"BRAM36 {r['bram36']:5.0f}  non-linear exposed {100 * r['nonlinear_exposed_share']:.1f} %"
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
