"""The experiments behind each chapter's "paper vs this book" table, as functions of a profile.

A chapter and ``python -m xaifool full-results`` call the same functions, so the numbers the book
prints for its own build (quick profile) and the numbers recorded on a GPU (full profile) come
from one code path; only the sizes differ.

``input_setup(P)``            the CIFAR-10 ResNet-20 and the attacked test images (chapters 02a, 04)
``input_results(P, setup)``   every input attack those chapters run, through the attack cache
``input_numbers(results)``    the headline numbers: curves, FSR, ImageNet, Dombrowski
``tabular_numbers()``         Slack et al.'s scaffolding and Dimanov et al.'s concealment (chapter 08)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import Profile

__all__ = ["InputSetup", "input_setup", "input_parts", "input_part_names", "merge_results", "input_results", "add_part_numbers", "input_numbers",
           "grid_cell_numbers", "region_numbers", "dombrowski_numbers", "imagenet_numbers", "tabular_numbers",
           "EPSILONS", "GRID_METHODS", "REGION", "SANITY_METHODS", "sanity_options", "sanity_test",
           "verdict_numbers"]

#: ε grid of the input attacks, in units of 1/255 (Ghorbani et al. go up to 8/255).
EPSILONS = (1, 2, 4, 8)
#: The interpreters of chapter 02a's attack grid, in the order of its tables (every differentiable
#: image interpreter of the registry; chapter 04 reads the same grid).
GRID_METHODS = ("gradient", "grad_x_input", "integrated_gradients", "smoothgrad", "gradcam", "lrp")
#: Fooling threshold τ on the top-k intersection for the fooling success rate.
FSR_TAU = 0.5


def REGION(h: int = 32, w: int = 32) -> torch.Tensor:
    """The targeted region of Ghorbani's region attack: the top-left 10/32 of the image."""
    r = torch.zeros(h, w)
    r[: round(10 * h / 32), : round(10 * w / 32)] = 1.0
    return r


@dataclass
class InputSetup:
    """What the input attacks of chapters 02a and 04 run on."""

    model: torch.nn.Module
    x: torch.Tensor            # (B, 3, 32, 32) correctly classified CIFAR-10 test images
    y: torch.Tensor            # (B,) their labels
    classes: tuple             # class names
    n_pool: int                # test images drawn to find them
    k: int                     # top-k size
    options: dict              # interpreter options inside the attacks


def input_setup(P: Profile) -> InputSetup:
    """The CIFAR-10 ResNet-20 and ``P.attack_n_cifar`` correctly classified test images (classes round-robin)."""
    from .. import data, models, zoo
    from ..attacks import input as A

    model = models.load_cifar_resnet(20)
    pool = data.load_cifar10("test", 4 * P.attack_n_cifar)
    chosen = zoo.correct_subset(model, pool, P.attack_n_cifar)
    options = {"integrated_gradients": {"n_steps": P.attack_ig_steps},
               "smoothgrad": {"n_samples": P.attack_smoothgrad_samples}}
    return InputSetup(model=model, x=chosen.x, y=chosen.y, classes=chosen.classes, n_pool=len(pool),
                      k=A.default_k(chosen.x.shape[-2:]), options=options)


def input_parts(P: Profile, s: InputSetup, *, imagenet: bool = True) -> dict:
    """The attacks of :func:`input_results` as named parts, each computed on its own (cached): a part's
    ``run()`` returns the entries it adds to the results dict. Every attack is seeded by its own
    settings, so a part gives the same result whichever parts ran before it (``full-results
    --resume`` computes them over several visits to a GPU).

    Names: ``grid/<method>/<attack>/<ε·255>`` (one cell of the (attack, method, ε) grid), ``region``,
    ``target_gradient``, ``target_lrp`` (Dombrowski's target-map attack), ``imagenet_gradient``,
    ``imagenet_lrp`` (random and top-k attacks on MobileNetV2)."""
    from .. import data, models, zoo
    from .. import explain as E
    from ..attacks import input as A

    bs = P.attack_batch_size
    parts: dict = {}

    def cell(attack, method, e):
        def run():
            r = A.attack_grid("resnet20", s.model, s.x, attacks=(attack,), methods=(method,), epsilons=(e,),
                              n_iter=P.attack_iters, options=s.options, progress=False, batch_size=bs)
            return {"grid": r}
        return run

    for method in GRID_METHODS:
        for e in EPSILONS:
            for attack in ("random", "topk", "center"):
                parts[f"grid/{method}/{attack}/{e:g}"] = cell(attack, method, e)
    parts["region"] = lambda: {"region": A.cached_attack(
        "resnet20", s.model, s.x, "region", "gradient", epsilon=8 / 255, n_iter=P.attack_iters, region=REGION(),
        progress=False, batch_size=bs)}

    def target(m):
        def run():
            goal = E.explain(s.model, s.x.roll(1, 0), None, m).cpu()   # the explanation of another image
            return {f"target_{m}": A.cached_attack("resnet20", s.model, s.x, "target", m, epsilon=8 / 255,
                                                   n_iter=P.dombrowski_iters, target_map=goal, progress=False,
                                                   batch_size=bs)}
        return run

    for m in ("gradient", "lrp"):
        parts[f"target_{m}"] = target(m)
    if imagenet:
        memo: dict = {}

        def images():
            if not memo:
                net = models.load_imagenet_classifier()
                chosen = zoo.correct_subset(net, data.load_imagenet_samples(4 * P.attack_n_imagenet), P.attack_n_imagenet)
                memo.update(net=net, x=chosen.x, y=chosen.y)
            return memo

        def on_imagenet(m):
            def run():
                d = images()
                return {"imagenet_x": d["x"], "imagenet_y": d["y"],
                        f"imagenet_random_{m}": A.cached_attack("mobilenet_v2", d["net"], d["x"], "random", m,
                                                                epsilon=8 / 255, progress=False, batch_size=bs),
                        f"imagenet_topk_{m}": A.cached_attack("mobilenet_v2", d["net"], d["x"], "topk", m,
                                                              epsilon=8 / 255, n_iter=P.attack_iters_imagenet,
                                                              progress=False, batch_size=bs)}
            return run

        for m in ("gradient", "lrp"):
            parts[f"imagenet_{m}"] = on_imagenet(m)
    return parts


def input_part_names(*, imagenet: bool = True) -> list[str]:
    """The names of :func:`input_parts`, in its order, without building anything (e.g. to tell how much
    of an unfinished full-results record is done)."""
    names = [f"grid/{m}/{a}/{e:g}" for m in GRID_METHODS for e in EPSILONS for a in ("random", "topk", "center")]
    return names + ["region", "target_gradient", "target_lrp"] + (["imagenet_gradient", "imagenet_lrp"] if imagenet else [])


def merge_results(results: dict, new: dict) -> dict:
    """Add a part's entries (:func:`input_parts`) to ``results`` in place (grid cells into ``results["grid"]``)."""
    for key, value in new.items():
        if key == "grid":
            results.setdefault("grid", {}).update(value)
        else:
            results[key] = value
    return results


def input_results(P: Profile, s: InputSetup, *, imagenet: bool = True, progress: bool | None = False,
                  on_done=None) -> dict:
    """Every input attack of chapters 02a/04 (cached): the (attack, method, ε) grid, the region and
    target-map attacks on ResNet-20, and the ImageNet top-k attacks on MobileNetV2 — every part of
    :func:`input_parts`, in its order. ``on_done(results_so_far)`` is called after the grid, after
    the region and target-map attacks, and after the ImageNet attacks. (``progress`` is accepted for
    the chapters' calls; the parts run without progress bars.)"""
    done = on_done or (lambda _: None)
    out: dict = {"grid": {}}
    parts = input_parts(P, s, imagenet=imagenet)
    for name, run in parts.items():
        merge_results(out, run())
        if name in ("grid/" + _last_cell(), "target_lrp", "imagenet_lrp"):
            done(out)
    return out


def _last_cell() -> str:
    return f"{GRID_METHODS[-1]}/center/{EPSILONS[-1]:g}"


def _mean(t) -> float:
    return float(torch.as_tensor(t, dtype=torch.float64).mean())


def grid_cell_numbers(r, k: int) -> dict:
    """One grid cell's numbers: mean top-k intersection, Spearman ρ, share of labels kept, FSR at τ."""
    from .. import metrics as M

    sim = r.similarity(k)
    return {"topk": _mean(sim["topk"]), "spearman": _mean(sim["spearman"]), "label_kept": _mean(r.label_kept.float()),
            "fsr": M.fooling_success_rate(sim["topk"], r.label_kept, FSR_TAU)}


def region_numbers(reg) -> dict:
    """Heatmap mass inside the targeted region before and after Ghorbani's region attack."""
    return {"mass_before": _mean((reg.heatmap * reg.target_map).flatten(1).sum(1)),
            "mass_after": _mean((reg.heatmap_adv * reg.target_map).flatten(1).sum(1)),
            "label_kept": _mean(reg.label_kept.float())}


def dombrowski_numbers(r) -> dict:
    """SSIM / Pearson to the target map before and after, labels kept, largest class-probability change."""
    from .. import metrics as M

    prob, prob_adv = r.logits.softmax(1), r.logits_adv.softmax(1)
    return {"ssim_before": _mean(M.ssim(r.heatmap, r.target_map)), "ssim_after": _mean(M.ssim(r.heatmap_adv, r.target_map)),
            "pearson_before": _mean(M.pearson(r.heatmap, r.target_map)),
            "pearson_after": _mean(M.pearson(r.heatmap_adv, r.target_map)),
            "label_kept": _mean(r.label_kept.float()), "max_prob_change": _mean((prob_adv - prob).abs().amax(1)),
            "n_iter": int(r.settings["n_iter"])}


def imagenet_numbers(results: dict, m: str, k: int) -> dict:
    """The random and top-k attacks on MobileNetV2 against interpreter ``m``."""
    row = {}
    for a in ("random", "topk"):
        r = results[f"imagenet_{a}_{m}"]
        sim = r.similarity(k)
        row[a] = {"topk": _mean(sim["topk"]), "spearman": _mean(sim["spearman"]),
                  "label_kept": _mean(r.label_kept.float()), "seconds_per_image": r.seconds / len(r)}
    row["n_iter"] = int(results[f"imagenet_topk_{m}"].settings["n_iter"])
    return row


def add_part_numbers(out: dict, name: str, res: dict, k: int) -> dict:
    """Merge into ``out`` (the structure :func:`input_numbers` returns) the numbers of part ``name`` of
    :func:`input_parts`, from ``res``, the entries its ``run()`` returned (or a results dict holding
    them; a ``grid/…`` name adds every cell of ``res["grid"]``). In place; returns ``out``."""
    seconds = out.setdefault("seconds", {"grid": 0.0})
    if name.startswith("grid/"):
        for (attack, method, eps), r in res["grid"].items():
            out.setdefault("curves", {}).setdefault(method, {}).setdefault(attack, {})[f"{eps:g}"] = grid_cell_numbers(r, k)
            seconds["grid"] += r.seconds
    elif name == "region":
        out["region"] = region_numbers(res["region"])
    elif name.startswith("target_"):
        m = name.removeprefix("target_")
        out.setdefault("dombrowski", {})[m] = dombrowski_numbers(res[name])
        seconds[f"dombrowski_{m}"] = res[name].seconds
    elif name.startswith("imagenet_"):
        from ..attacks.input import default_k

        m = name.removeprefix("imagenet_")
        k_in = default_k(res["imagenet_x"].shape[-2:])
        out.setdefault("imagenet", {}).update(k=k_in, n_images=len(res["imagenet_x"]))
        out["imagenet"][m] = imagenet_numbers(res, m, k_in)
    else:
        raise ValueError(f"name must be a part of input_parts (grid/…, region, target_…, imagenet_…), got {name!r}")
    return out


def input_numbers(results: dict, k: int) -> dict:
    """The numbers of the chapters' "paper vs this book" tables, from :func:`input_results`.

    ``curves``: {method: {attack: {ε·255: {"topk", "spearman", "label_kept", "fsr"}}}} (means over images;
    FSR at τ = 0.5 on the top-k intersection, labels kept required);
    ``dombrowski``: {method: SSIM / Pearson to the target before and after, labels kept, largest
    change of a class probability}; ``imagenet``: {method: {"random", "topk": top-k, ρ, labels kept,
    seconds per image}}; ``seconds``: wall-clock seconds of each attack family.
    """
    out = add_part_numbers({"k": int(k), "fsr_tau": FSR_TAU, "curves": {}, "seconds": {"grid": 0.0}}, "grid/",
                           results, k)
    if "target_lrp" not in results:   # a partial result (see input_results' on_done)
        return out
    for name in ("region", "target_gradient", "target_lrp"):
        add_part_numbers(out, name, results, k)
    if "imagenet_topk_lrp" in results:
        for m in ("gradient", "lrp"):
            add_part_numbers(out, f"imagenet_{m}", results, k)
    return out


def tabular_numbers(names=("compas", "german", "adult"), *, on_done=None, n_jobs: int = 1) -> dict:
    """Chapter 08's headline numbers: for every data set, Slack's scaffold against LIME and
    KernelSHAP under the book's settings (``"slack"``) and under Slack et al.'s (``"slack_settings"``):
    share of rows where the sensitive feature ranks first for f and for the scaffold, where the
    decoy does, fidelity, and the same at the highest threshold keeping ≥ 97 % of real rows; and Dimanov's concealment (accuracy and sensitive
    feature's attribution share before and after), at the active profile's sizes.
    ``on_done(partial)`` is called after each part; ``n_jobs`` processes explain the rows (the
    numbers do not depend on it)."""
    from ..attacks import concealment as C
    from ..attacks import scaffold as T

    out: dict = {"slack": {}, "slack_settings": {}, "dimanov": {}}
    for key, config in (("slack", "book"), ("slack_settings", "slack")):
        for n in names:
            for e in T.SCAFFOLD_EXPLAINERS:
                r = T.scaffold_experiment(n, e, config=config, n_jobs=n_jobs)
                k97 = T.tradeoff_points(r)["keep97"]
                out[key].setdefault(n, {})[e] = {
                    "top1_f": float(r["ranks_f"][0]), "top1_scaffold": float(r["ranks_scaffold"][0]),
                    "top1_unrelated": float(r["ranks_unrelated"][0]), "fidelity": float(r["fidelity"]),
                    "detector_fake": float(r["detector_fake"]), "n_explain": int(len(r["attr_f"])),
                    "threshold": float(r["threshold"]), "top1_keep97": float(k97["top1"]),
                    "fidelity_keep97": float(k97["fidelity"]),
                }
                if on_done:
                    on_done(out)
    for n in names:
        ds_b, base, concealed = C.conceal(n)
        rep = C.concealment_report(ds_b, {"before": base, "after": concealed})
        out["dimanov"][n] = {k: {m: float(v) for m, v in rep[k].items() if isinstance(v, (int, float))}
                             for k in ("before", "after")}
        if on_done:
            on_done(out)
    return out


# ---- chapter 06: the randomisation tests of the chapter and of full-results

#: The interpreters of the chapter's randomisation tests: every image interpreter that reads the
#: model's gradients or propagates relevance (LIME and KernelSHAP query the model; Adebayo et al.
#: test the former).
SANITY_METHODS = ("gradient", "grad_x_input", "smoothgrad", "integrated_gradients", "gradcam", "guided_backprop",
                  "guided_gradcam", "lrp")


def sanity_options(profile=None) -> dict:
    """Interpreter options of the chapter's tests: ``profile.sanity_samples`` SmoothGrad samples and
    Integrated-Gradients steps (every randomisation step explains every image with every interpreter)."""
    from ..config import get_config

    P = profile or get_config().profile
    return {"smoothgrad": {"n_samples": P.sanity_samples}, "integrated_gradients": {"n_steps": P.sanity_samples}}


def sanity_test(base_key: str, profile=None) -> tuple[dict, "torch.Tensor"]:
    """The chapter's cascading test, one step per block: ``("mobilenet_v2", …)`` on
    ``profile.sanity_n_imagenet`` ImageNet sample images, ``("cifar_resnet20", …)`` on
    ``profile.sanity_n_cifar`` CIFAR-10 test images. Returns (the :func:`xaifool.sanity.cascading` result, the images)."""
    from .. import sanity as S
    from ..data import load_cifar10, load_imagenet_samples
    from ..models import load_cifar_resnet, load_imagenet_classifier

    from ..config import get_config

    P = profile or get_config().profile
    if base_key == "mobilenet_v2":
        model, x = load_imagenet_classifier(), load_imagenet_samples(P.sanity_n_imagenet).x
    elif base_key == "cifar_resnet20":
        model, x = load_cifar_resnet(20), load_cifar10("test", P.sanity_n_cifar).x
    else:
        raise ValueError(f"base_key must be 'mobilenet_v2' or 'cifar_resnet20', got {base_key!r}")
    return S.cascading(model, x, SANITY_METHODS, layers=S.blocks(model), options=sanity_options(P)), x


def verdict_numbers(result: dict) -> dict:
    """:func:`xaifool.sanity.verdict` as plain numbers, ``{method: {"after_first", "after_all", "passes"}}`` (JSON records)."""
    from .. import sanity as S

    v = S.verdict(result)
    return {m: {"after_first": float(v.loc[m, "after first step"]), "upper": float(v.loc[m, "upper layers (mean)"]),
                "after_all": float(v.loc[m, "after all steps"]), "passes": bool(v.loc[m, "passes"])} for m in v.index}
