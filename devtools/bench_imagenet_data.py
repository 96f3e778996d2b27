"""``python -m devtools.bench_imagenet_data``: a search on a generated ImageNet-scale folder.

    python -m devtools.bench_imagenet_data --dir /tmp/inet50k                # 50,000 val images
    python -m devtools.bench_imagenet_data --dir /tmp/inet50k --val-per-class 5 --json

Writes (once; a later call reuses it) an ImageNet-layout folder under ``--dir``: ``val/`` with
``--val-per-class`` images of each of ``--classes`` classes (default 50 × 1,000 = ImageNet's
50,000) and ``train/`` with ``--train-per-class`` (default 2: the calibration images come from
there), JPEG and PNG, mixed sizes, RGB, grayscale and CMYK (:mod:`devtools.imagefolder`); a
random-weight timm ViT so small that the run measures the data path (``vit_tiny_patch16_224`` at
224² input with ``embed_dim`` 16, one block, one head); and a study over all the val images.
Then it runs ``python -m codesign.search`` on it in a fresh run folder, with a fresh image cache
(``CODESIGN_CACHE`` under ``--dir``) unless ``--keep-cache``, and prints the search's peak RSS
(the largest of its processes), wall time and phases, and the size of the decoded-image cache.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from codesign.study import REPO_ROOT
from devtools.imagefolder import write_imagenet_folder
from hwmodel.base.cli import command_parser, positive_int, run_main
from hwmodel.target.timm_compat import import_timm

COMMAND = "devtools.bench_imagenet_data"
ARCH = {"embed_dim": 16, "depth": 1, "num_heads": 1}


def prepare(
    root: Path, classes: int, val_per_class: int, train_per_class: int, trials: int, proxy: str
) -> Path:
    """The folder, checkpoint and study under ``root`` (the folder only when not there yet)."""
    data = root / f"data-{classes}x{val_per_class}"
    if not (data / "done").is_file():
        shutil.rmtree(data, ignore_errors=True)
        write_imagenet_folder(data, classes, train_per_class, val_per_class)
        (data / "done").write_text("")
    ckpt = root / "tiny_vit.pt"
    torch.manual_seed(0)
    model = import_timm().create_model("vit_tiny_patch16_224", pretrained=False, num_classes=classes, **ARCH)
    torch.save(model.state_dict(), ckpt)
    study = root / "study.yaml"
    kwargs = ", ".join(f"{k}: {v}" for k, v in ARCH.items())
    study.write_text(
        "name: imagenet_data_bench\n"
        "model:\n"
        "  name: vit_tiny_patch16_224\n"
        f"  checkpoint: {ckpt}\n"
        f"  data: {data}\n"
        f"  kwargs: {{{kwargs}}}\n"
        "  data_workers: 2\n"
        "device: zcu102\n"
        f"search_space: {REPO_ROOT / 'search_spaces' / 'deit_zcu102.yaml'}\n"
        "fps: 30\n"
        f"trials: {trials}\n"
        f"proxy: {{kind: {proxy}}}\n"
    )
    return study


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--dir", type=Path, required=True, help="where the folder, study and runs go")
    p.add_argument("--classes", type=positive_int, default=1000)
    p.add_argument("--val-per-class", type=positive_int, default=50)
    p.add_argument("--train-per-class", type=positive_int, default=2)
    p.add_argument("--trials", type=positive_int, default=30)
    p.add_argument("--proxy", default="kl", help="the study's proxy.kind (default kl)")
    p.add_argument("--keep-cache", action="store_true", help="reuse the decoded images of a former call")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    root: Path = args.dir
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    study = prepare(root, args.classes, args.val_per_class, args.train_per_class, args.trials, args.proxy)
    prepare_s = time.perf_counter() - t0
    cache = root / "cache"
    if not args.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    runs = root / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    cmd = [sys.executable, "-m", "codesign.search", "--study", str(study), "--out", str(runs), "--json"]
    t1 = time.perf_counter()
    proc = subprocess.run(
        cmd, env={**os.environ, "CODESIGN_CACHE": str(cache)}, capture_output=True, text=True
    )
    wall = time.perf_counter() - t1
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        return proc.returncode
    search: dict[str, Any] = json.loads(proc.stdout)
    info = json.loads((runs / "imagenet_data_bench" / "summary.json").read_text())
    out = {
        "val_images": args.classes * args.val_per_class,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "search_wall_s": round(wall, 1),
        "phase_s": search.get("phase_s"),
        "pareto": search.get("pareto"),
        "rescored": len(info.get("real_accuracy", {})),
        "cache_mb": round(sum(f.stat().st_size for f in cache.rglob("*.u8")) / 2**20, 1),
        "folder_prepare_s": round(prepare_s, 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key:18} {value}")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)


if __name__ == "__main__":
    sys.exit(entry())
