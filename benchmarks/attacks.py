"""Input attacks: throughput of one attack step, batched vs a per-image Python loop.

One step of the top-k attack of Ghorbani et al. (2019) on the gradient map: the Softplus
surrogate's heatmap with ``create_graph=True``, the loss, its gradient w.r.t. the input
(double backpropagation), the signed step with the exact ℓ∞ projection, and the original
network's heatmap at the new iterate, whose forward pass also gives the logits (the label check
and the objective of the keep-the-best rule) — ``xaifool.attacks.input.attack_step``, the body of the
attacks' loop.

Measured for the CIFAR-10 ResNet-20 at 32 px and the ImageNet MobileNetV2 at 224 px, on the
configured device (``XAIFOOL_DEVICE``; a GPU when present). Reports images × iterations per
second and the ratio batched / loop, and the throughput against the batch size (where it levels
off, the step is bound by arithmetic and no batching can do better). Against the hardware: the
device's practical peak (a large matrix product's FLOP/s, fp32, and on a GPU TF32 and bf16), the
FLOPs of one step (counted op by op, double backward included) and the fraction of the peak the
step achieves. How cost grows: throughput and peak memory against image size and depth. Variants
of the same step (the logits read off the heatmap's forward pass, TF32, channels-last, cuDNN
autotuning, bf16 autocast) against the plain fp32 eager step — the textbook step, which runs a
separate forward pass for the logits — each with the largest difference of the iterates after a
few steps. Writes
``benchmarks/results/attacks-<device>.json``.
Needs only torch/torchvision and the xaifool package (random images if no data mirror).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import contextlib
import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from xaifool import describe, get_config, models
from xaifool.cache import atomic_write_text
from xaifool.config import device_name
from xaifool.book.full_results import commit
from xaifool import explain as E
from xaifool.attacks import input as A

RESULTS = Path(__file__).resolve().parent / "results"


def make_step(model, surrogate, method="gradient", epsilon=8 / 255, alpha=1 / 255):
    """``step(x_t, x0, label, mask)``: one top-k attack iteration on a batch, the attacks' own
    :func:`xaifool.attacks.input.attack_step` (so the benchmark times exactly what the attacks run)."""

    def step(xt, x0, label, mask):
        ref = {"mask": mask}
        return A.attack_step(model, surrogate, method, "topk", xt, x0, label, ref, ref, epsilon=epsilon, alpha=alpha,
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


class _FlopCount(TorchDispatchMode):
    """Counts the FLOPs of every op torch's flop counter knows (convolutions, their backward,
    matrix products), op by op. Unlike ``FlopCounterMode`` it tracks no modules, so it follows
    ``autograd.grad(create_graph=True)`` (the double backward of an attack step)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def step_flops(model, x):
    """FLOPs per image of one attack step (counted on a batch of ``x``). Counted on a surrogate
    whose depthwise layers are convolutions (the counter knows convolutions, not the element-wise
    ops of ``models.DepthwiseShifts``), so the count is that of the step's mathematics."""
    surrogate = models.smooth(model, A.DEFAULT_BETA, depthwise_shifts=False)
    for p in surrogate.parameters():
        p.requires_grad_(False)
    step, label, mask = _setup(model, x, surrogate)
    with _FlopCount() as c:
        step(x, x, label, mask)
    return c.flops / x.shape[0]


def matmul_peak(dev, dtype=torch.float32, n=None, repeats=5):
    """FLOP/s of an n × n × n matrix product on ``dev``: the practical peak of that precision."""
    n = n or (8192 if dev.type == "cuda" else 2048)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best, _ = _time(lambda: a @ b, dev, repeats)
    return 2 * n ** 3 / best


@contextlib.contextmanager
def _variant(tf32=False, cudnn_benchmark=False):
    """Backend switches of a variant, restored afterwards."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = old


#: name → (tf32, channels_last, cudnn.benchmark, bf16 autocast, logits read off the heatmap's pass).
#: The plain step is the textbook one (a separate forward pass for the logits); every other variant
#: starts from the engine's step, which shares that pass (the interpreter entry's ``shares_forward``).
VARIANTS = {
    "plain fp32": (False, False, False, False, False),
    # the same step again: on a GPU, cuDNN's default kernels are not bit-reproducible, so this row is
    # the floor every other row's difference has to be read against (0 on a CPU)
    "plain fp32, again": (False, False, False, False, False),
    "shared logits pass": (False, False, False, False, True),
    "channels-last": (False, True, False, False, True),
    "TF32": (True, False, False, False, True),
    "TF32 + cuDNN autotune": (True, False, True, False, True),
    "TF32 + channels-last + autotune": (True, True, True, False, True),
    "bf16 autocast + autotune": (False, False, True, True, True),
    "TF32 + CUDA graph": (True, False, False, False, True),
    # the fastest eager variant on the H200 (bf16), captured as well
    "bf16 autocast + autotune + CUDA graph": (False, False, True, True, True),
    # the network and its Softplus surrogate compiled by TorchInductor (CPU and GPU)
    "torch.compile (Inductor)": (False, False, False, False, True),
}
#: Variants whose step is captured once as a CUDA graph and replayed (one launch instead of hundreds:
#: what a small batch is bound by); a capture that fails is recorded as the row's ``error``.
GRAPHED = ("TF32 + CUDA graph", "bf16 autocast + autotune + CUDA graph")
#: Variants whose networks are compiled (``torch.compile``, default backend). The step differentiates
#: the heatmap, itself a gradient, so it needs the compiled backward to be differentiable again (double
#: backward), which AOTAutograd does not support (pytorch/pytorch#91469, #183603): the row then records
#: the error PyTorch raises, and measures the step should a later PyTorch accept it.
COMPILED = ("torch.compile (Inductor)",)


def _graphed(step, xv, label, mask, warmup=3):
    """``run(x_t)``: ``step(x_t, xv, label, mask)`` captured as a CUDA graph (static input and output
    buffers: ``x_t`` is copied in, the returned tensors are overwritten by the next replay)."""
    static_x = xv.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):   # warm-up off the default stream, as capture requires
        for _ in range(warmup):
            step(static_x, xv, label, mask)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = step(static_x, xv, label, mask)

    def run(xt):
        static_x.copy_(xt)
        graph.replay()
        return static_out

    return run


@contextlib.contextmanager
def _shared_forward(on: bool):
    """The engine's step (``on``: the gradient's entry shares the forward pass) or the textbook step
    with its own forward pass for the logits (the entry replaced for the block)."""
    old = E.METHODS["gradient"]
    E.register(dataclasses.replace(old, shares_forward=old.shares_forward and on), replace=True)
    try:
        yield
    finally:
        E.register(old, replace=True)


def variants(model, x, repeats, n_steps=10, names=None):
    """img·it/s of the same step under each variant, and max |x_adv − x_adv(plain)| after ``n_steps``
    steps from the same start (a sign step flips where the gradient's sign differs: the difference
    is then a multiple of the step size α)."""
    dev = next(model.parameters()).device
    rows, ref = [], None
    for name in names or VARIANTS:
        tf32, cl, bench, bf16, shared = VARIANTS[name]
        if dev.type != "cuda" and (tf32 or bench or bf16):
            continue
        fmt = torch.channels_last if cl else torch.contiguous_format
        m = model.to(memory_format=fmt)
        xv = x.to(dev).contiguous(memory_format=fmt)
        # autocast must not cache cast weights across a graph capture (torch.cuda.make_graphed_callables docs)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=name not in GRAPHED) if bf16
               else contextlib.nullcontext())
        try:
            with _variant(tf32, bench), amp, _shared_forward(shared):
                if name in COMPILED:
                    torch._dynamo.reset()
                    step, label, mask = _setup(torch.compile(m), xv, surrogate=torch.compile(
                        A.surrogate_network(m, "gradient", A.DEFAULT_BETA)))
                else:
                    step, label, mask = _setup(m, xv)
                if name in GRAPHED:
                    run = _graphed(step, xv, label, mask)
                    step = lambda xt, x0, lab, msk: tuple(t.clone() if torch.is_tensor(t) else t for t in run(xt))  # noqa: E731
                best, _ = _time(lambda: step(xv, xv, label, mask), dev, repeats)
                xt = xv
                for _ in range(n_steps):
                    xt = step(xt, xv, label, mask)[0]
        except Exception as err:   # a variant the backend refuses (e.g. a capture that syncs): recorded, not fatal
            rows.append({"variant": name, "error": f"{type(err).__name__}: {err}"[:300]})
            print(f"    {name:32s} failed: {rows[-1]['error']}")
            continue
        finally:
            if name in COMPILED:
                torch._dynamo.reset()
        xt = xt.float().contiguous().cpu()
        if ref is None:
            ref = xt
        rows.append({"variant": name, "img_iter_per_s": x.shape[0] / best, "seconds_per_step": best,
                     "max_abs_diff_x_adv": float((xt - ref).abs().max()), "n_steps": n_steps,
                     "fraction_differing": float(((xt - ref).abs() > 1e-6).float().mean()),
                     "alpha": 1 / 255})
        print(f"    {name:32s} {rows[-1]['img_iter_per_s']:9.1f} img·it/s, max |Δx_adv| after {n_steps} steps "
              f"{rows[-1]['max_abs_diff_x_adv']:.2e}")
    model.to(memory_format=torch.contiguous_format)
    return rows


def _peak_memory(dev, fn):
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    fn()
    torch.cuda.synchronize(dev)
    return torch.cuda.max_memory_allocated(dev)


def growth(dev, repeats, batch, sizes=(32, 64, 128, 224), depths=(20, 32, 44, 56)):
    """Throughput, FLOPs and peak memory of one step against image size (ResNet-20) and depth (32 px)."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for depth in depths:
        for size in (sizes if depth == depths[0] else (32,)):
            model = models.load_cifar_resnet(depth, device=dev)
            b = max(1, batch * 32 * 32 // (size * size)) if dev.type == "cuda" else max(1, batch // (size // 32) ** 2)
            x = torch.rand(b, 3, size, size, generator=g).to(dev)
            step, label, mask = _setup(model, x)
            best, _ = _time(lambda: step(x, x, label, mask), dev, repeats)
            mem = _peak_memory(dev, lambda: step(x, x, label, mask))
            flops = step_flops(model, x[: min(4, b)])
            rows.append({"depth": depth, "size": size, "batch": b, "img_iter_per_s": b / best,
                         "step_gflop_per_image": flops / 1e9, "achieved_tflops": flops * b / best / 1e12,
                         "peak_memory_bytes": mem, "memory_per_image_bytes": None if mem is None else mem / b})
            print(f"    ResNet-{depth} {size:3d} px, batch {b:4d}: {rows[-1]['img_iter_per_s']:9.1f} img·it/s, "
                  f"{rows[-1]['achieved_tflops']:.2f} TFLOP/s" + ("" if mem is None else f", {mem / 2**20:.0f} MiB"))
    return rows


def _setup(model, x, surrogate=None):
    """The step function and the attack's fixed inputs (labels, top-k masks) for images ``x``."""
    surrogate = A.surrogate_network(model, "gradient", A.DEFAULT_BETA) if surrogate is None else surrogate
    with torch.no_grad():
        label = model(x).argmax(1)
    h0 = E.heatmap(model, x, label, "gradient")
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
    """img·it/s (and, on a GPU, peak memory) of one batched step for each batch size in ``sizes``
    (images repeated to fill)."""
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
        mem = _peak_memory(dev, lambda: step(xb, xb, label, mask))
        rows.append({"batch": b, "img_iter_per_s": b * calls / best, "seconds_per_step": best / calls,
                     "peak_memory_bytes": mem})
        print(f"    batch {b:4d}: {rows[-1]['img_iter_per_s']:8.1f} img·it/s"
              + ("" if mem is None else f", {mem / 2**20:.0f} MiB"))
    return rows


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
    """Sections in order of value; the JSON is rewritten after each one (``"complete": false`` until
    the end), so a run stopped at a time limit keeps what it measured."""
    cfg = get_config()
    dev = cfg.device
    print(describe())
    torch.manual_seed(cfg.seed)
    gpu = dev.type == "cuda"
    record = {"benchmark": "attacks", "device": str(dev), "device_name": device_name(dev),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "profile": cfg.profile.name,
              "cpu_count": os.cpu_count(), "load_average_1min_before": os.getloadavg()[0],  # other processes
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "complete": False, "runs": [],
              "commit": commit(),
              "device_memory_bytes": torch.cuda.get_device_properties(dev).total_memory if gpu else None,
              "backend_defaults": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                                   "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                                   "cudnn_benchmark": torch.backends.cudnn.benchmark}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"attacks-{dev.type}.json"

    def save(complete=False):
        record.update(complete=complete, load_average_1min_after=os.getloadavg()[0])
        atomic_write_text(path, json.dumps(record, indent=2))

    peaks = record["matmul_peak_flops"] = {"fp32": matmul_peak(dev)}
    if gpu:
        with _variant(tf32=True):
            peaks["tf32"] = matmul_peak(dev)
        peaks["bf16"] = matmul_peak(dev, torch.bfloat16)
    print("matrix-product peak: " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()))
    save()
    # On a GPU a single-image step is bound by kernel launches (~30 ms), so few repeats suffice and
    # the batch sweep goes on to where memory, not arithmetic, would limit it. MobileNetV2's double
    # backward is slow on the GPU (its depthwise convolutions; ~30 img·it/s on an H100): few images.
    plan = [("resnet20", models.load_cifar_resnet(20), _images("cifar", 128 if gpu else 32),
             (1, 4, 16, 64, 256, 1024, 4096) if gpu else (1, 2, 4, 8, 16, 32, 64, 128), 32 if gpu else 64),
            ("mobilenet_v2", models.load_imagenet_classifier(), _images("imagenet", 8 if gpu else 4),
             (1, 4, 16, 64) if gpu else (1, 2, 4, 8), 8)]
    for name, model, x, sizes, min_images in plan:
        run = bench_model(name, model, x, repeats=2 if gpu or name != "resnet20" else 3)
        record["runs"].append(run)
        run["step_gflop_per_image"] = step_flops(model, x[:4].to(dev)) / 1e9
        run["achieved_tflops"] = run["step_gflop_per_image"] * run["batched"]["img_iter_per_s"] / 1e3
        run["fraction_of_fp32_peak"] = run["achieved_tflops"] * 1e12 / peaks["fp32"]
        print(f"{name:>12}: {run['step_gflop_per_image']:.2f} GFLOP per image and step, "
              f"{run['achieved_tflops']:.2f} TFLOP/s = {100 * run['fraction_of_fp32_peak']:.1f} % of the fp32 peak")
        save()
        print(f"  variants ({name}):")
        run["variants"] = variants(model, x, repeats=2)
        save()
        run["batch_scaling"] = batch_scaling(model, x, sizes, repeats=2 if gpu or name != "resnet20" else 3,
                                             min_images=min_images)
        save()
    print("  growth (image size, depth):")
    record["growth"] = growth(dev, repeats=2 if gpu else 1, batch=256 if gpu else 16)
    save(complete=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
