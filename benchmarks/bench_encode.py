"""Encode overhead: ``vqgeom.encode`` against the model's own forward pass on the same batch.

Networks (written here; torchvision cannot be installed beside a CPU torch):

* ``resnet18``: ResNet-18-style CIFAR network (3x3 stem, four stages of two basic blocks,
  64-128-256-512 channels, BatchNorm, global average pooling), 3 x 32 x 32 inputs;
* ``vgg11``: VGG-11-style CIFAR network (eight 3x3 convolutions with BatchNorm and ReLU,
  five 2x2 max-pooling layers), 3 x 32 x 32 inputs;
* ``mlp``: the paper's 784 -> 16 x 6 ReLU MLP with a 10-way head.

Correctness first: each network's codes are checked against an independent recorder
(forward hooks on its ReLU and MaxPool modules, bits from the numpy oracle
:mod:`vqgeom.kernels.reference`; the MLP against ``backend="numpy"``). Then forward and
encode alternate on the same batch (warm-up, then ``--repeats`` pairs); the table gives
medians and the ratio encode / forward. Target: at most 1.25x.

Usage::

    python benchmarks/bench_encode.py               # writes benchmarks/results/encode-<device>.{csv,json,md}
    python benchmarks/bench_encode.py --quick       # smaller batches, fewer repeats
    python benchmarks/bench_encode.py --device cuda # on a GPU (synchronised timings)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import vqgeom
from vqgeom.kernels import reference
from _machine import cpu_name  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent


# -- networks --------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(h)) + self.short(x))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, classes)

    def forward(self, x):
        h = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


def vgg11(classes: int = 10) -> nn.Module:
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, classes))


def mlp() -> nn.Module:
    from vqgeom.models import mlp as build

    return build(784, 16, 6, 10)


def _randomise_bn(net: nn.Module, gen: torch.Generator) -> None:
    # Running statistics away from (0, 1) so that eval-mode BatchNorm is a real affine map.
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


# -- correctness: an independent recorder -----------------------------------------------------------


def hooked_bits(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, list[int]]:
    """Bits from forward hooks on ReLU / MaxPool2d modules, decided by the numpy oracle."""
    cols: list[np.ndarray] = []
    sizes: list[int] = []

    def relu_hook(m, inp, out):
        pre = inp[0].detach().double().cpu().numpy().reshape(len(x), -1)
        cols.append(pre >= 0)
        sizes.append(pre.shape[1])

    def pool_hook(m, inp, out):
        z = inp[0].detach().double().cpu().numpy()
        _, idx, g = reference.max_pool_index(z, (m.kernel_size,) * 2, (m.stride,) * 2)
        cols.append(reference.max_bits(idx.reshape(len(x), -1), g))
        sizes.append(cols[-1].shape[1])

    hs = []
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            hs.append(m.register_forward_hook(relu_hook))
        elif isinstance(m, nn.MaxPool2d):
            hs.append(m.register_forward_hook(pool_hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hs:
            h.remove()
    return np.concatenate(cols, axis=1), sizes


def check(name: str, net: nn.Module, x: torch.Tensor) -> None:
    xs = x[:2]
    codes = vqgeom.encode(net, xs)
    if name == "mlp":
        ref = vqgeom.encode(net, xs.cpu().double().numpy(), backend="numpy")
        bits, sizes = ref.unpack(), list(ref.layer_sizes)
    else:
        bits, sizes = hooked_bits(net, xs)
    if list(codes.layer_sizes) != sizes or not np.array_equal(codes.unpack(), bits):
        raise SystemExit(f"{name}: encode disagrees with the independent recorder")


# -- timing -----------------------------------------------------------------------------------------



def run(args) -> list[dict]:
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cases = [
        ("resnet18", ResNet18(), (3, 32, 32), args.conv_batch),
        ("vgg11", vgg11(), (3, 32, 32), args.conv_batch),
        ("mlp", mlp(), (784,), args.mlp_batch),
    ]
    rows = []
    for name, net, shape, batch in cases:
        if args.only and name not in args.only:
            continue
        _randomise_bn(net, gen)
        net = net.to(device).eval()
        x = torch.randn((batch,) + shape, generator=gen).to(device)
        check(name, net, x)

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        def forward():
            with torch.no_grad():
                net(x)
            sync()

        def enc():
            c = vqgeom.encode(net, x, batch_size=batch, backend="cpu" if device.type == "cpu" else "auto")
            sync()
            return c

        forward(), enc()  # warm-up
        tf, te = [], []
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            t0 = time.perf_counter()
            forward()
            tf.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            codes = enc()
            te.append(time.perf_counter() - t0)
        mf, me = statistics.median(tf), statistics.median(te)
        row = dict(network=name, batch=batch, bits_per_row=codes.n_units, layers=codes.n_layers,
                   forward_ms=1e3 * mf, encode_ms=1e3 * me, ratio=me / mf,
                   forward_min_ms=1e3 * min(tf), encode_min_ms=1e3 * min(te), repeats=args.repeats)
        rows.append(row)
        print(f"{name:9s} batch {batch:6d}  forward {row['forward_ms']:9.1f} ms  encode {row['encode_ms']:9.1f} ms  "
              f"ratio {row['ratio']:.3f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    ap.add_argument("--conv-batch", type=int, default=64)
    ap.add_argument("--mlp-batch", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="results stem (default benchmarks/results/encode-<device>)")
    args = ap.parse_args()
    if args.quick:
        args.conv_batch, args.mlp_batch, args.repeats = 8, 2048, 3
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    rows = run(args)
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{cpu_name()}, {args.threads} thread(s)"
    meta = dict(date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes"), device=dev,
                torch=torch.__version__, load_before=load, load_after=os.getloadavg(), quick=args.quick)
    stem = Path(args.out) if args.out else HERE / "results" / f"encode-{'cpu' if args.device == 'cpu' else 'gpu'}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    stem.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    lines = [f"# Encode overhead — {dev}, {meta['date']}", "",
             f"Load average before/after: {load[0]:.2f} / {meta['load_after'][0]:.2f} (1 min); medians of "
             f"{args.repeats} alternating forward/encode pairs on the same batch.", "",
             "| network | batch | bits/row | layers | forward (ms) | encode (ms) | encode / forward |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['batch']} | {r['bits_per_row']} | {r['layers']} | {r['forward_ms']:.1f} | "
                     f"{r['encode_ms']:.1f} | {r['ratio']:.3f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
