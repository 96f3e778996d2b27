"""``python -m hwmodel.vendor_ip NETLIST...``: count the resources of a Vivado functional netlist.

The counting rules (primitives grouped as Vivado's utilisation report groups them) are
:mod:`hwmodel.calibration.vendor_ip`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from hwmodel.base.cli import command_parser, run_main
from hwmodel.calibration.vendor_ip import count_netlist


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("hwmodel.vendor_ip", __doc__)
    parser.add_argument("netlists", nargs="+", type=Path, help="*_sim_netlist.v / .vhdl files")
    parser.add_argument("--json", action="store_true", help="one JSON document for all files")
    args = parser.parse_args(argv)
    results = [count_netlist(p) for p in args.netlists]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    total = dict.fromkeys(("lut", "ff", "bram36", "dsp"), 0.0)
    for r in results:
        res = r["resources"]
        assert isinstance(res, dict)
        print(f"{r['file']}")
        print(f"  design {r.get('design', '?')}  device {r.get('device', '?')}  {r.get('tool_version', '')}")
        print(
            f"  LUT {res['lut']} (logic {res['lut_logic']}, memory {res['lut_memory']})  FF {res['ff']}"
            f"  BRAM36 {res['bram36']:g}  DSP {res['dsp']}  CARRY {res['carry']}  MUXF {res['muxf']}"
        )
        if res["other"]:
            print(f"  other cells (not counted): {res['other']}")
        if r["encrypted"]:
            print("  warning: parts of this netlist are encrypted; the cells they define are not counted")
        for key in total:
            value = res[key]
            assert isinstance(value, int | float)
            total[key] += value
    if len(results) > 1:
        print("total: " + "  ".join(f"{k.upper()} {v:g}" for k, v in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog="hwmodel.vendor_ip"))
