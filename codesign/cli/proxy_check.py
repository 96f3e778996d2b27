"""How well does the fast proxy rank quantization configs as real accuracy would?

    python -m codesign.proxy_check            # 40 random mixed configs, default model
    python -m codesign.proxy_check --json --configs 60 --seed 1
    python -m codesign.proxy_check --proxy linkl_topk --topk 3   # another proxy kind
    python -m codesign.proxy_check --bench-model deit_small_patch16_224 --space search_spaces/deit_zcu102.yaml

``--bench-model NAME`` times a term proxy instead (no accuracies): a random-weight timm model
(``--classes``, default 1,000) on ``--proxy-images`` random images, the terms of every choice of
``--space`` precomputed, then the mean milliseconds of a call (``measure_proxy``).

Draws random per-layer configs from the default search space (W2…W8, A4…A8, PoT ratios; bit
targets log-uniform per config), measures the real top-1 on the test split and the proxy on
calibration images for each, and prints Kendall τ and Spearman ρ and the mean seconds per proxy
call and per real evaluation (both after the one-off set-up, which is reported separately).

It also prints how reliable the real accuracy itself is: Kendall τ between accuracies measured on
two random halves of the test split (``split_half_tau``) and between the proxy and one half
(``proxy_half_tau``). On the shipped model most configs lie within a few test images of each
other, so τ against the 2,000 test images is bounded by that noise, not only by the proxy;
``tau_ceiling`` is the τ a perfect proxy could reach against them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import torch
from scipy import stats

from codesign.errors import UserError
from codesign.models import load_default
from codesign.proxy import FORWARD_KINDS, PROXY_KINDS, TERM_KINDS, Evaluator, random_config
from codesign.proxy._bench import measure_proxy
from codesign.proxy._streamed import TOPK_CLASSES
from codesign.space import DEFAULT_SPACE_FILE, load_space
from hwmodel.base.cli import command_parser, run_main

COMMAND = "codesign.proxy_check"


def split_half_taus(
    hits: torch.Tensor, proxies: Sequence[float], seed: int, rounds: int = 50
) -> tuple[float, float]:
    """How reliable is the real accuracy itself? Mean Kendall τ between the accuracies measured
    on two random halves of the test split (``split_half_tau``), and between the proxy and the
    accuracy on one half (``proxy_half_tau``). A proxy with ``proxy_half_tau`` ≥ ``split_half_tau``
    ranks configs as well as an independent test set of half the size would."""
    gen = torch.Generator().manual_seed(seed)
    n = hits.shape[1]
    between: list[float] = []
    with_proxy: list[float] = []
    for _ in range(rounds):
        idx = torch.randperm(n, generator=gen)
        a, b = hits[:, idx[: n // 2]].mean(1), hits[:, idx[n // 2 :]].mean(1)
        between.append(float(stats.kendalltau(a.numpy(), b.numpy()).statistic))
        with_proxy.append(float(stats.kendalltau(list(proxies), a.numpy()).statistic))
    return sum(between) / rounds, sum(with_proxy) / rounds


def tau_ceiling(split_half_tau: float) -> float:
    """Kendall τ a perfect proxy (the configs' true accuracies) could reach against the measured
    accuracy: split-half τ → Pearson r (Greiner, r = sin(πτ/2)), Spearman-Brown to the full split
    (2r / (1 + r)), correlation with the truth = √reliability, back to τ (2/π · arcsin)."""
    r_half = math.sin(math.pi * max(split_half_tau, 0.0) / 2)
    reliability = 2 * r_half / (1 + r_half)
    return 2 / math.pi * math.asin(math.sqrt(reliability))


def run_check(
    n_configs: int,
    seed: int,
    proxy_kind: str,
    proxy_images: int,
    space_file: str = str(DEFAULT_SPACE_FILE),
    topk: int = TOPK_CLASSES,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    space = load_space(space_file).quant
    model, splits = load_default()
    ev = Evaluator(model, splits, proxy_kind=proxy_kind, proxy_images=proxy_images, topk=topk)
    rng = random.Random(seed)
    configs = [random_config(space, ev.layer_names(), rng) for _ in range(n_configs)]
    # One-off set-up, as in a long search: the per-layer quantized weights and scales (and the
    # linearized proxy's per-layer terms) of every choice, so both timings below are steady state.
    if ev.proxy_kind in TERM_KINDS:
        ev.precompute(space)
    for cfg in configs:
        ev.quantized(cfg)
    setup_s = time.perf_counter() - t0
    proxies: list[float] = []
    accs: list[float] = []
    proxy_s: list[float] = []
    eval_s: list[float] = []
    others: dict[str, list[float]] = {k: [] for k in FORWARD_KINDS}
    for cfg in configs:
        t1 = time.perf_counter()
        proxies.append(ev.proxy(cfg))
        proxy_s.append(time.perf_counter() - t1)
        t1 = time.perf_counter()
        accs.append(ev.accuracy(cfg))
        eval_s.append(time.perf_counter() - t1)
        scores = ev.proxy_scores(cfg)  # the forward-pass proxies, for comparison (not timed)
        for k in FORWARD_KINDS:
            others[k].append(scores.get(k))
    tau = float(stats.kendalltau(proxies, accs).statistic)
    rho = float(stats.spearmanr(proxies, accs).statistic)
    hits = torch.stack([ev.correct_for(cfg) for cfg in configs]).float()
    half_tau, proxy_half_tau = split_half_taus(hits, proxies, seed)
    return {
        "configs": n_configs,
        "proxy": ev.proxy_kind,
        **({"topk": topk} if ev.proxy_kind == "linkl_topk" else {}),
        "kendall_tau": tau,
        "spearman_rho": rho,
        "proxy_s": sum(proxy_s) / n_configs,
        "eval_s": sum(eval_s) / n_configs,
        "setup_s": setup_s,
        "fp32_accuracy": ev.fp32_accuracy(),
        "accuracy_min": min(accs),
        "accuracy_max": max(accs),
        "split_half_tau": half_tau,
        "proxy_half_tau": proxy_half_tau,
        "tau_ceiling": tau_ceiling(half_tau),
        "kendall_tau_forward_proxies": {
            k: float(stats.kendalltau(v, accs).statistic) for k, v in others.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser(COMMAND, __doc__)
    p.add_argument("--configs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proxy", default="auto", help=f"one of {', '.join(PROXY_KINDS)}")
    p.add_argument("--topk", type=int, default=TOPK_CLASSES, help="linkl_topk: classes kept (+ a remainder)")
    p.add_argument("--proxy-images", type=int, default=256)
    p.add_argument("--bench-model", metavar="NAME", help="time the proxy on a random-weight timm model")
    p.add_argument("--classes", type=int, default=1000, help="--bench-model: class count")
    p.add_argument("--space", default=str(DEFAULT_SPACE_FILE), help="search space file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.configs < 3:
        raise UserError(f"--configs must be ≥ 3, got {args.configs}")
    if args.proxy not in PROXY_KINDS:
        raise UserError(f"--proxy {args.proxy!r}: allowed {', '.join(PROXY_KINDS)}")
    torch.set_num_threads(args.threads)
    if args.topk < 1:
        raise UserError(f"--topk must be ≥ 1, got {args.topk}")
    if args.bench_model:
        return bench(args)
    res = run_check(args.configs, args.seed, args.proxy, args.proxy_images, args.space, topk=args.topk)
    res["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"configs        {res['configs']} (seed {args.seed}), proxy {res['proxy']}")
        print(f"FP32 accuracy  {res['fp32_accuracy']:.2f} %")
        print(f"accuracy range {res['accuracy_min']:.2f} … {res['accuracy_max']:.2f} %")
        print(f"Kendall tau    {res['kendall_tau']:.3f}")
        print(f"Spearman rho   {res['spearman_rho']:.3f}")
        print(
            f"noise ceiling  tau(half, other half) {res['split_half_tau']:.3f}, "
            f"tau(proxy, half) {res['proxy_half_tau']:.3f}; "
            f"a perfect proxy would reach {res['tau_ceiling']:.3f}"
        )
        others = ", ".join(f"{k} {v:.3f}" for k, v in res["kendall_tau_forward_proxies"].items())
        print(f"tau, forward proxies  {others}")
        print(f"set-up         {res['setup_s']:.1f} s (load, calibration, proxy terms)")
        print(f"proxy call     {res['proxy_s'] * 1e3:.1f} ms")
        print(
            f"real eval      {res['eval_s'] * 1e3:.1f} ms "
            f"({res['eval_s'] / max(res['proxy_s'], 1e-9):.1f}x the proxy)"
        )
        print(f"wall time      {res['wall_s']:.1f} s")
    return 0


def bench(args: argparse.Namespace) -> int:
    """``--bench-model``: the proxy's precompute seconds and call milliseconds (random weights)."""
    from hwmodel.target.timm_compat import import_timm

    torch.manual_seed(args.seed)
    model = import_timm().create_model(args.bench_model, pretrained=False, num_classes=args.classes).eval()
    c, h, w = model.pretrained_cfg.get("input_size", (3, 224, 224))
    images = torch.randn(args.proxy_images, c, h, w)
    space = load_space(args.space).quant
    t = measure_proxy(model, images, space, args.proxy, topk=args.topk, progress=not args.json)
    res = {"model": args.bench_model, **dataclasses.asdict(t), "threads": torch.get_num_threads()}
    if t.kind == "linkl_topk":
        res["topk"] = args.topk
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for key, value in res.items():
            print(f"{key:14s} {value:.3f}" if isinstance(value, float) else f"{key:14s} {value}")
    return 0


def entry(argv: Sequence[str] | None = None) -> int:
    return run_main(main, argv, prog=COMMAND)
