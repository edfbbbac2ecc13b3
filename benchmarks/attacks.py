"""Input attacks: throughput of one attack step, batched vs a per-image Python loop.

One step of the top-k attack of Ghorbani et al. (2019) on the gradient map: the Softplus
surrogate's heatmap with ``create_graph=True``, the loss, its gradient w.r.t. the input
(double backpropagation), the signed step with the exact ℓ∞ projection, and the original
network's forward pass and heatmap at the new iterate (the label check and the objective of the
keep-the-best rule) — ``xaifool.attacks.input._step``, the body of the attacks' loop.

Measured for the CIFAR-10 ResNet-20 at 32 px and the ImageNet MobileNetV2 at 224 px, on the
configured device (``XAIFOOL_DEVICE``; a GPU when present). Reports images × iterations per
second and the ratio batched / loop, and the throughput against the batch size (where it levels
off, the step is bound by arithmetic and no batching can do better); writes
``benchmarks/results/attacks-<device>.json``.
Needs only torch/torchvision and the xaifool package (random images if no data mirror).
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from xaifool import describe, get_config, models
from xaifool.attacks import input as A

RESULTS = Path(__file__).resolve().parent / "results"


def make_step(model, surrogate, method="gradient", epsilon=8 / 255, alpha=1 / 255):
    """``step(x_t, x0, label, mask)``: one top-k attack iteration on a batch, the attacks' own
    :func:`xaifool.attacks.input._step` (so the benchmark times exactly what the attacks run)."""

    def step(xt, x0, label, mask):
        ref = {"mask": mask}
        return A._step(model, surrogate, method, "topk", xt, x0, label, ref, ref, epsilon=epsilon, alpha=alpha,
                       beta=A.DEFAULT_BETA, options={}, update="sign")

    return step


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time(fn, dev, repeats):
    """Best wall-clock seconds of ``fn`` over ``repeats`` runs after one warm-up, and all of them."""
    fn()
    _sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times), times


def _forward_flops(model, x):
    """Floating-point operations of one forward pass (torch's FlopCounterMode; convolutions and
    matrix products, the bulk of the work). Backward passes are not counted: the counter does not
    follow ``autograd.grad`` with ``create_graph``."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / x.shape[0]


def _setup(model, x):
    """The step function and the attack's fixed inputs (labels, top-k masks) for images ``x``."""
    surrogate = A._surrogate(model, "gradient", A.DEFAULT_BETA)
    with torch.no_grad():
        label = model(x).argmax(1)
    h0 = A._heatmap(model, x, label, "gradient", {}, False)
    k = A.default_k(x.shape[-2:])
    mask = torch.zeros_like(h0.flatten(1)).scatter_(1, h0.flatten(1).topk(k, 1).indices, 1.0)
    return make_step(model, surrogate), label, mask


def bench_model(name, model, x, repeats):
    dev = next(model.parameters()).device
    x = x.to(dev)
    step, label, mask = _setup(model, x)
    n = x.shape[0]

    def batched():
        step(x, x, label, mask)

    def loop():
        for i in range(n):  # the per-image loop the attacks avoid
            step(x[i:i + 1], x[i:i + 1], label[i:i + 1], mask[i:i + 1])

    out = {}
    for tag, fn in (("batched", batched), ("loop", loop)):
        best, times = _time(fn, dev, repeats)
        out[tag] = {"seconds_per_step": best, "img_iter_per_s": n / best, "all_seconds": times}
    out["ratio"] = out["batched"]["img_iter_per_s"] / out["loop"]["img_iter_per_s"]
    out["forward_mflop_per_image"] = _forward_flops(model, x[:1]) / 1e6
    out.update(model=name, batch=n, size=int(x.shape[-1]), method="gradient", attack="topk")
    print(f"{name:>12} {n:3d} × {x.shape[-1]} px: batched {out['batched']['img_iter_per_s']:8.1f} img·it/s, "
          f"loop {out['loop']['img_iter_per_s']:8.1f} img·it/s, ratio {out['ratio']:.1f}×")
    return out


def batch_scaling(model, x, sizes, repeats, min_images):
    """img·it/s of one batched step for each batch size in ``sizes`` (images repeated to fill)."""
    dev = next(model.parameters()).device
    rows = []
    for b in sizes:
        xb = x.repeat((b + len(x) - 1) // len(x), 1, 1, 1)[:b].to(dev)
        step, label, mask = _setup(model, xb)
        calls = max(1, min_images // b)  # time at least ``min_images`` images per measurement

        def run():
            for _ in range(calls):
                step(xb, xb, label, mask)

        best, _ = _time(run, dev, repeats)
        rows.append({"batch": b, "img_iter_per_s": b * calls / best, "seconds_per_step": best / calls})
        print(f"    batch {b:4d}: {rows[-1]['img_iter_per_s']:8.1f} img·it/s")
    return rows


def _cpu_name():
    try:  # Linux: the model name; platform.processor() only says "x86_64" there
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _images(kind, n):
    try:
        from xaifool import data

        if kind == "cifar":
            return data.load_cifar10("test", n).x
        return data.load_imagenet_samples(n).x
    except Exception as err:  # no data mirror (e.g. on a bare GPU machine): timing needs no real images
        print(f"({kind}: {type(err).__name__}; using random images)")
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 3, *((32, 32) if kind == "cifar" else (224, 224)), generator=g)


def main():
    cfg = get_config()
    dev = cfg.device
    print(describe())
    load_before = os.getloadavg()[0]  # other processes on the machine distort CPU timings
    torch.manual_seed(cfg.seed)
    gpu = dev.type == "cuda"
    resnet, cifar = models.load_cifar_resnet(20), _images("cifar", 128 if gpu else 32)
    runs = [bench_model("resnet20", resnet, cifar, repeats=5 if gpu else 3)]
    runs[0]["batch_scaling"] = batch_scaling(
        resnet, cifar, (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if gpu else (1, 2, 4, 8, 16, 32, 64, 128),
        repeats=3, min_images=512 if gpu else 64)
    mobilenet, imagenet = models.load_imagenet_classifier(), _images("imagenet", 32 if gpu else 4)
    runs.append(bench_model("mobilenet_v2", mobilenet, imagenet, repeats=5 if gpu else 2))
    runs[1]["batch_scaling"] = batch_scaling(mobilenet, imagenet, (1, 2, 4, 8, 16, 32, 64) if gpu else (1, 2, 4, 8),
                                             repeats=3 if gpu else 2, min_images=64 if gpu else 8)
    name = torch.cuda.get_device_name(dev) if gpu else _cpu_name()
    record = {"benchmark": "attacks", "device": str(dev), "device_name": name, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "profile": cfg.profile.name, "cpu_count": os.cpu_count(),
              "load_average_1min_before": load_before, "load_average_1min_after": os.getloadavg()[0],
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"attacks-{dev.type}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
