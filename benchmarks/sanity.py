"""Sanity checks: the cascading randomisation test against Quantus' MPRT and against the compute bound.

The same work three ways, for each interpreter (the gradient and Integrated Gradients, 10 steps
of the trapezoid rule as Quantus' own captum call uses):

``quantus``  ``quantus.MPRT`` (top-down cascading, Spearman of the absolute maps), with Quantus'
             own explanation function ``quantus.explain`` (captum ``Saliency(abs=False)`` /
             ``IntegratedGradients``, channels summed) — what a reader would otherwise run;
``book``     :func:`xaifool.sanity.cascading` with ``metrics=("spearman_abs",)`` (the same maps,
             the same randomisation, the same similarity);
``bound``    the compute bound of the test: the randomisation steps and one batched explanation of
             all images per step (:func:`xaifool.explain.heatmap`), nothing else — no similarity,
             no bookkeeping.

On the book's MobileNetV2 (ReLU) and ``n_images`` ImageNet sample images; every parameterised
layer for the gradient; for Integrated Gradients (10 × the work per step) the top ``ig_layers``
layers on a CPU. Each time is the best of ``repeats`` runs after a warm-up. Writes
``benchmarks/results/sanity-<device>.json`` with the three times, the ratios and the largest
difference between the book's and Quantus' per-layer similarities (both must compute the same test).
Environment: ``XAIFOOL_BENCH_SANITY_IMAGES`` (default 8), ``XAIFOOL_BENCH_SANITY_IG_LAYERS``
(default: all layers on a GPU, 16 on a CPU), ``XAIFOOL_BENCH_REPEATS`` (default 1 on a CPU, 3 on a GPU).
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from xaifool import data, describe, get_config, models
from xaifool import explain as E
from xaifool import sanity as S
from xaifool.config import device_name

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 42
METHODS = {  # book method, its options, Quantus' explain method
    "gradient": ({}, "Gradient"),
    "integrated_gradients": ({"n_steps": 10, "quadrature": "riemann_trapezoid"}, "IntegratedGradients"),
}


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _best(fn, dev, repeats):
    times, out = [], None
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        out = fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return min(times), out


def bound(model, x, target, method, options, layers):
    """Randomise layer by layer (top-down) and explain the batch once per step: the test's compute."""
    for _, net in S.randomized(model, "top_down", seed=SEED, layers=layers):
        E.heatmap(net, x, target, method, reduce="sum", normalize=None, **options)


def book(model, x, target, method, options, layers):
    return S.cascading(model, x, [method], target=target, order="top_down", seed=SEED, layers=layers,
                       metrics=("spearman_abs",), options={method: options})


def quantus_mprt(model, x, target, qmethod, layers):
    import quantus

    keep = set(layers)
    skip = [n for n in S.randomizable_layers(model) if n not in keep]
    net = model
    if skip:  # Quantus randomises every module that *has* reset_parameters: hide it on the others
        import copy

        def hidden(self):
            raise AttributeError("reset_parameters")

        net = copy.deepcopy(model)
        for n in skip:
            m = net.get_submodule(n)
            m.__class__ = type(type(m).__name__, (type(m),), {"reset_parameters": property(hidden)})
    mprt = quantus.MPRT(layer_order="top_down", seed=SEED, disable_warnings=True, display_progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mprt(model=net, x_batch=x.cpu().numpy(), y_batch=target.cpu().numpy(), a_batch=None,
                    channel_first=True, explain_func=quantus.explain,
                    explain_func_kwargs={"method": qmethod, "device": str(x.device)},
                    device=str(x.device), batch_size=len(x))


def main():
    cfg = get_config()
    dev = cfg.device
    n = int(os.environ.get("XAIFOOL_BENCH_SANITY_IMAGES", 8))
    repeats = int(os.environ.get("XAIFOOL_BENCH_REPEATS", 1 if dev.type == "cpu" else 3))
    model = models.load_imagenet_classifier(device=dev)
    x = data.load_imagenet_samples(n).x.to(dev)
    with torch.no_grad():
        target = model(x).argmax(1)
    all_layers = S.randomizable_layers(model)
    ig_layers = int(os.environ.get("XAIFOOL_BENCH_SANITY_IG_LAYERS", len(all_layers) if dev.type == "cuda" else 16))
    record = {"benchmark": "sanity", "device": str(dev), "device_name": device_name(dev),
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "describe": describe(),
              "model": "mobilenet_v2 (ReLU)", "n_images": n, "image_size": int(x.shape[-1]),
              "n_layers_model": len(all_layers), "repeats": repeats, "runs": []}
    try:
        import quantus
        record["quantus"] = quantus.__version__
    except ImportError:
        record["quantus"] = None
    out = RESULTS / f"sanity-{dev.type}.json"
    for method, (options, qmethod) in METHODS.items():
        layers = all_layers if method == "gradient" else all_layers[-ig_layers:]
        E.heatmap(model, x[:1], target[:1], method, **options)  # warm-up (method is positional)
        t_bound, _ = _best(lambda: bound(model, x, target, method, options, layers), dev, repeats)
        t_book, ours = _best(lambda: book(model, x, target, method, options, layers), dev, repeats)
        run = {"method": method, "n_layers": len(layers), "options": options, "bound_s": t_bound, "book_s": t_book,
               "book_over_bound": t_book / t_bound}
        print(f"{method}: {len(layers)} layers, bound {t_bound:.1f} s, book {t_book:.1f} s", flush=True)
        if record["quantus"]:
            t_q, ref = _best(lambda: quantus_mprt(model, x, target, qmethod, layers), dev, repeats)
            got = ours["similarity"][method]["spearman_abs"].numpy()
            want = np.array([ref[k] for k in ours["layers"]])
            run.update(quantus_s=t_q, quantus_over_book=t_q / t_book,
                       max_similarity_difference=float(np.nanmax(np.abs(got - want))))
            print(f"  quantus {t_q:.1f} s ({t_q / t_book:.1f}× the book), "
                  f"max |Δ similarity| {run['max_similarity_difference']:.2g}", flush=True)
        record["runs"].append(run)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1))  # incremental: a cut-off run keeps what it measured
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
