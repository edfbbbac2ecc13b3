"""What the book runs, as three tables for chapter 08: its models, its data sets and its manipulation
methods, each row linked to the chapter that runs it.

The rows come from the package's registries wherever they exist — the base models of
:data:`xaifool.zoo.BASE_MODELS`, the input attacks of :mod:`xaifool.attacks.input` (derived from
:data:`xaifool.attacks.objectives.OBJECTIVES`), the model attacks of
:data:`xaifool.attacks.heo.registry.MODEL_ATTACKS`, the interpreters' labels — and from the active
profile (sizes, Heo et al.'s (attack, interpreter) grids), so that a newly registered attack or base
model appears in the tables by itself. What no registry says (which chapter uses what, where the
weights come from, a human name for an objective) is declared here, next to the code that uses it.

The frames hold reader-facing text only (labels, formatted numbers, Markdown links);
:func:`markdown_table` turns one into a MyST Markdown table whose ``{ref}`` links Sphinx resolves
when the table is glued with ``{glue:md}`` and ``:format: myst``. The measured numbers themselves are
in the :class:`ModelRecord` objects.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ..leaderboard import attack_label

__all__ = ["ModelRecord", "chapter_titles", "chapter_link", "image_models", "tabular_models", "manipulated_models",
           "models_frame", "datasets_frame", "input_attacks", "input_runs", "methods_frame", "markdown_table",
           "NOT_RUN", "PAPERS", "HEO_GRIDS"]

# ---------------------------------------------------------------------------------------------------
# Chapters
# ---------------------------------------------------------------------------------------------------

_TARGET = re.compile(r"^\((?P<label>[A-Za-z0-9_-]+)\)=\s*\n(?P<hashes>#+)\s+(?P<title>.+?)\s*$", re.M)


@lru_cache(maxsize=4)
def chapter_titles(folder: str | None = None) -> dict[str, str]:
    """``{label: link text}`` of every MyST target ``(label)=`` directly above a heading in the chapters
    (``notebooks/*.md`` of the repository, or ``folder``). A chapter's text is its title up to the first
    colon ("Input manipulation"); a section's is its chapter's and its own ("Experiments, § Scaffolding").
    Empty when the chapters are not at hand (an installed package without the book)."""
    from ..config import REPO_ROOT

    root = Path(folder) if folder is not None else REPO_ROOT / "notebooks"
    out: dict[str, str] = {}
    for path in sorted(root.glob("*.md")):
        chapter = None
        for m in _TARGET.finditer(path.read_text("utf8")):
            short = m["title"].split(":")[0].strip()
            if len(m["hashes"]) == 1:
                chapter = short
                out[m["label"]] = short
            else:
                out[m["label"]] = f"{chapter}, § {short}" if chapter else short
    return out


def chapter_link(label: str) -> str:
    """A MyST ``{ref}`` link to ``label`` with its short title as text (see :func:`chapter_titles`).
    A ValueError when the chapters are at hand and none has that target (a renamed label)."""
    titles = chapter_titles()
    if titles and label not in titles:
        raise ValueError(f"label must be a target of the chapters {sorted(titles)}, got {label!r}")
    return f"{{ref}}`{titles.get(label, label)} <{label}>`"


def _links(labels) -> str:
    return "; ".join(chapter_link(label) for label in labels)


# ---------------------------------------------------------------------------------------------------
# Small formatting helpers
# ---------------------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * float(x):.1f} %"


def _count(n: int) -> str:
    return f"{int(n):,}"


def _github(url: str | None) -> str:
    """``[github.com/owner/repo](https://github.com/owner/repo)`` for a GitHub file address."""
    m = re.match(r"https://(?:github\.com|raw\.githubusercontent\.com)/([^/]+)/([^/]+)/", url or "")
    if not m:
        return url or ""
    repo = f"github.com/{m[1]}/{m[2]}"
    return f"[{repo}](https://{repo})"


def _base_label(key: str) -> str:
    """A base model's name for tables: its zoo description without the call in parentheses."""
    from ..zoo import base_entry

    return re.sub(r"\s*\(.*\)\s*$", "", base_entry(key).description)


def _method_labels(names) -> str:
    from ..plot import method_label

    return ", ".join(method_label(n) for n in names)


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelRecord:
    """One row of the models table, with its numbers unformatted.

    parameters:  counted from the loaded model (``sum(p.numel() for p in model.parameters())``)
    accuracy:    top-1 accuracy in [0, 1] measured by this build (None: measured elsewhere, see ``measured_on``)
    n:           the number of images or rows it was measured on
    measured_on: what it was measured on, for the table
    weights:     where the weights come from (Markdown)
    chapters:    labels of the chapters that use the model
    """

    name: str
    architecture: str
    parameters: int
    accuracy: float | None
    n: int | None
    measured_on: str
    weights: str
    chapters: tuple[str, ...]


def _parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _cifar_test(n: int):
    from ..data import load_cifar10

    return load_cifar10("test", n)


def _imagenet_samples(n: int):
    from ..data import load_imagenet_samples

    return load_imagenet_samples(n)


#: How each base model's accuracy is measured: the profile field of the size, the loader of the
#: images, what they are (for the table).
_ACCURACY_SETS = {
    "cifar_resnet20": ("n_accuracy_cifar", _cifar_test, "CIFAR-10 test images (JPEG, quality 75)"),
    "mobilenet_v2": ("n_accuracy_imagenet", _imagenet_samples, "ImageNet sample images"),
}

#: The chapters that use each base model.
_BASE_CHAPTERS = {
    "cifar_resnet20": ("chap-interpreters", "chap-input-manipulation", "chap-model-manipulation", "chap-targets",
                       "chap-evaluation", "chap-explaining", "chap-sanity-checks", "chap-benchmarking"),
    "mobilenet_v2": ("chap-interpreters", "chap-input-manipulation", "chap-model-manipulation",
                     "chap-sanity-checks"),
}


def _architecture(key: str, model) -> str:
    net = getattr(model, "net", model)
    if key == "cifar_resnet20":
        stages = [getattr(net, f"layer{i}") for i in (1, 2, 3)]
        widths = ", ".join(str(s[0].conv1.out_channels) for s in stages)
        depth = 6 * len(stages[0]) + 2
        return (f"ResNet-{depth}: {len(stages)} stages of {len(stages[0])} residual blocks ({widths} channels), "
                "parameter-free shortcuts; 32 × 32 input")
    if key == "mobilenet_v2":
        from torchvision.models.mobilenetv2 import InvertedResidual

        blocks = sum(isinstance(m, InvertedResidual) for m in net.modules())
        return f"MobileNetV2: {blocks} inverted-residual blocks, ReLU (not ReLU6); 224 × 224 input"
    return type(net).__name__


def _weights(key: str) -> str:
    from .. import data, models

    if key == "cifar_resnet20":
        name = models.CIFAR_DEPTHS[20]
        return (f"Idelbayev's `{name}` ({_github(data.REGISTRY[name].url)}); its checkpoint reports "
                f"{_pct(models.cifar_reported_accuracy(20))} on the lossless test set")
    if key == "mobilenet_v2":
        return ("torchvision's architecture with float weights dequantized from PyTorch's iOS demo model "
                f"({_github(data.REGISTRY['mobilenet_quantized.pt'].url)})")
    return "–"


def image_models(n_cifar: int | None = None, n_imagenet: int | None = None) -> list[ModelRecord]:
    """The base models of :data:`xaifool.zoo.BASE_MODELS`, loaded, their parameters counted and their
    top-1 accuracy measured now: the ResNet-20 on ``n_cifar`` (default ``profile.n_accuracy_cifar``)
    CIFAR-10 test images, MobileNetV2 on ``n_imagenet`` (default ``profile.n_accuracy_imagenet``)
    ImageNet sample images. A base model registered without an accuracy set is counted, not measured."""
    from .. import models
    from ..config import get_config, one_thread
    from ..zoo import BASE_MODELS

    P = get_config().profile
    sizes = {"n_accuracy_cifar": n_cifar, "n_accuracy_imagenet": n_imagenet}
    out = []
    for key, entry in BASE_MODELS.items():
        model = entry.load(None)
        accuracy = n = None
        measured_on = "not measured here"
        if key in _ACCURACY_SETS:
            field, load, what = _ACCURACY_SETS[key]
            n = int(sizes[field] if sizes[field] is not None else getattr(P, field))
            images = load(n)
            with one_thread():   # measured: on a busy 2-core machine, 2 threads took 20 times as long
                accuracy = models.accuracy(model, images.x, images.y)
            measured_on = f"{_count(n)} {what}"
        out.append(ModelRecord(_base_label(key), _architecture(key, model), _parameters(model), accuracy, n,
                               measured_on, _weights(key), _BASE_CHAPTERS.get(key, ())))
        del model
    return out


#: Model kinds of :func:`xaifool.models.train_tabular_model` → the column of
#: :func:`xaifool.attacks.scaffold.reference_accuracy` that holds their accuracy (and the table's name).
_TABULAR_KINDS = {"mlp": "MLP", "logreg": "logistic regression"}


def _widths(model) -> str:
    import torch.nn as nn

    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return " → ".join(str(w) for w in [linear[0].in_features, *(m.out_features for m in linear)])


def tabular_models(sets: dict, accuracy) -> list[ModelRecord]:
    """The small tabular models of :func:`xaifool.models.train_tabular_model` (cached: loaded, not
    trained again, when the chapter has trained them), one per data set of ``sets`` ({name:
    TabularDataset}) and kind, with the test accuracy the chapter measured: ``accuracy``, the frame of
    :func:`xaifool.attacks.scaffold.reference_accuracy` per data set (rows: data sets, columns: its labels)."""
    from ..config import get_config, one_thread
    from ..models import train_tabular_model
    from .paper import DATASET_TITLES

    accuracy = pd.DataFrame(accuracy)
    P = get_config().profile
    out = []
    for kind, column in _TABULAR_KINDS.items():
        if column not in accuracy.columns:
            raise ValueError(f"accuracy must hold a column {column!r} (reference_accuracy's), got "
                             f"{list(accuracy.columns)}")
        for name, ds in sets.items():
            with one_thread():
                model = train_tabular_model(ds, kind)
            title = DATASET_TITLES.get(name, name)
            hidden = "" if kind == "logreg" else ", ReLU"
            chapters = (("chap-interpreters",) if (name, kind) == ("compas", "mlp") else ()) + ("exp-honest-models",)
            out.append(ModelRecord(f"{column} ({title})", f"{column}: {_widths(model)} units{hidden}; "
                                   "inputs standardised inside the model", _parameters(model),
                                   float(accuracy.loc[name, column]), len(ds.y_test),
                                   f"{_count(len(ds.y_test))} {title} test rows",
                                   f"trained by this build (Adam, {P.tabular_epochs} "
                                   f"epoch{'s' if P.tabular_epochs != 1 else ''}); cached", chapters))
    return out


#: Base model → the profile field of the (attack, interpreter) pairs chapter 02b fine-tunes it for.
HEO_GRIDS = {"cifar_resnet20": "heo_grid", "mobilenet_v2": "heo_imagenet_grid"}
#: The chapters that use the manipulated copies of each base model.
_MANIPULATED_CHAPTERS = {"cifar_resnet20": ("chap-model-manipulation", "chap-targets", "chap-evaluation",
                                            "chap-explaining", "chap-sanity-checks", "chap-benchmarking"),
                         "mobilenet_v2": ("chap-model-manipulation",)}


def manipulated_models(base: list[ModelRecord]) -> list[ModelRecord]:
    """One row per base model that chapter 02b fine-tunes with Heo et al.'s attacks in this profile
    (:data:`HEO_GRIDS`): the manipulated models are *not* loaded (they cost minutes when not cached);
    their parameters are the base model's (``base``, from :func:`image_models`), their accuracy is
    reported by chapter 02b."""
    from ..config import get_config
    from ..zoo import base_entry

    P = get_config().profile
    params = {r.name: r.parameters for r in base}
    out = []
    for key, field in HEO_GRIDS.items():
        pairs = tuple(getattr(P, field))
        if not pairs:
            continue
        entry, label = base_entry(key), _base_label(key)
        n_train = getattr(P, entry.n_train) if entry.n_train else P.heo_n_imagenet // 2
        epochs = getattr(P, entry.epochs)
        source = "training images" if entry.labelled else "sample images by distillation"
        out.append(ModelRecord(
            f"{label} fine-tuned by Heo et al.'s attacks", f"as the {label}: {len(pairs)} fine-tuned "
            f"cop{'ies' if len(pairs) > 1 else 'y'}, one per (attack, interpreter) pair of this profile",
            params[label], None, None, "held-out accuracy of each copy: " + chapter_link("chap-model-manipulation"),
            f"fine-tuned by this build from the weights above on {_count(n_train)} {source}, {epochs} "
            f"epoch{'s' if epochs != 1 else ''}; cached", _MANIPULATED_CHAPTERS.get(key, ("chap-model-manipulation",))))
    return out


def models_frame(records: list[ModelRecord]) -> pd.DataFrame:
    """The models table: one row per :class:`ModelRecord`, every cell reader-facing text."""
    rows = [{"model": r.name, "architecture": r.architecture, "parameters": _count(r.parameters),
             "top-1 accuracy (this build)": "–" if r.accuracy is None else _pct(r.accuracy),
             "measured on": r.measured_on, "weights": r.weights, "chapters": _links(r.chapters)} for r in records]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------------------

def _explained_rows(name: str, n_test: int) -> int:
    """Test rows the scaffolding experiments explain (the rule of :mod:`xaifool.attacks.scaffold`):
    ``profile.scaffold_explain_share`` of the test split where it names the data set, else
    ``profile.n_tabular_explain``."""
    from ..config import get_config

    P = get_config().profile
    share = dict(P.scaffold_explain_share or ())
    if name in share:
        return max(1, min(n_test, int(round(float(share[name]) * n_test))))
    return min(n_test, P.n_tabular_explain)


#: The chapters that use each data set.
_DATA_CHAPTERS = {
    "imagenet": ("chap-interpreters", "chap-input-manipulation", "chap-model-manipulation", "chap-sanity-checks"),
    "cifar_test": ("chap-interpreters", "chap-input-manipulation", "chap-model-manipulation", "chap-targets",
                   "chap-evaluation", "chap-explaining", "chap-sanity-checks", "chap-benchmarking"),
    "cifar_train": ("chap-model-manipulation", "chap-targets", "chap-evaluation", "chap-sanity-checks"),
    "compas": ("chap-interpreters", "exp-data-sets", "chap-explaining"),
    "german": ("exp-data-sets", "chap-explaining"),
    "adult": ("exp-data-sets", "chap-explaining"),
}


def _class_text(names) -> str:
    """Class names for a table cell: ``<=50K`` / ``>50K`` as ``≤ 50K`` / ``> 50K``."""
    return " / ".join(re.sub(r"^>(?=\S)", "> ", re.sub(r"^<=", "≤ ", n)) for n in names)


def datasets_frame(sets: dict) -> pd.DataFrame:
    """The data-sets table for the active profile: the image sets and the tabular ``sets`` ({name:
    TabularDataset}, as loaded by the chapter): modality, the size this profile uses, classes and
    features, chapters."""
    from .. import data
    from ..config import get_config
    from .paper import DATASET_TITLES

    P = get_config().profile
    n_imagenet = len(data.imagenet_index())
    cifar_train = ("lossless" if P.heo_n_train <= 4000 else "JPEG")
    rows = [
        {"data set": "ImageNet sample images", "modality": "image (photographs)",
         "used in this profile": f"{P.n_accuracy_imagenet} for accuracy, {P.n_images} in figures, "
                                 f"{P.attack_n_imagenet} attacked, {P.heo_n_imagenet} for model attacks (half "
                                 f"held out), {P.sanity_n_imagenet} in sanity checks; of {_count(n_imagenet)}",
         "classes / features": f"{_count(n_imagenet)} classes, one image each; 3 × 224 × 224 pixels",
         "chapters": _links(_DATA_CHAPTERS["imagenet"])},
        {"data set": "CIFAR-10 test images (JPEG, quality 75)", "modality": "image",
         "used in this profile": f"{_count(P.n_accuracy_cifar)} for accuracy, {P.attack_n_cifar} attacked, "
                                 f"{P.heo_n_test} held out for model attacks, {P.sanity_n_cifar} in sanity "
                                 "checks; of 10,000",
         "classes / features": f"{len(data.CIFAR10_CLASSES)} classes; 3 × 32 × 32 pixels",
         "chapters": _links(_DATA_CHAPTERS["cifar_test"])},
        {"data set": "CIFAR-10 training images", "modality": "image",
         "used in this profile": f"{_count(P.heo_n_train)} ({cifar_train}) for fine-tuning, "
                                 f"{_count(P.sanity_n_train)} (lossless) for the data-randomisation test; of "
                                 "50,000 (JPEG), the first 4,000 also lossless",
         "classes / features": f"{len(data.CIFAR10_CLASSES)} classes; 3 × 32 × 32 pixels",
         "chapters": _links(_DATA_CHAPTERS["cifar_train"])},
    ]
    for name, ds in sets.items():
        n_train, n_test = len(ds.y_train), len(ds.y_test)
        rows.append({
            "data set": DATASET_TITLES.get(name, name), "modality": "table",
            "used in this profile": f"all {_count(n_train + n_test)} rows ({_count(n_train)} training, "
                                    f"{_count(n_test)} test); {_explained_rows(name, n_test)} test rows explained",
            "classes / features": f"2 classes ({_class_text(ds.class_names)}); {ds.n_features} features, "
                                  f"sensitive: `{ds.sensitive}`",
            "chapters": _links(_DATA_CHAPTERS.get(name, ("exp-data-sets",)))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# Manipulation methods
# ---------------------------------------------------------------------------------------------------

#: What each input attack does to the explanation, in words (else the objective's own description).
_INPUT_GOALS = {
    "random": "adds ε times the sign of Gaussian noise (a baseline with no objective)",
    "topk": "moves the map's mass out of its original top-k pixels",
    "center": "moves the map's centre of mass away from the original one",
    "region": "pulls the map's mass into a chosen region (here the top-left corner)",
    "target": "makes the map imitate a target map (another image's) while the logits stay close",
}
#: Author-year text of the papers → BibTeX key in ``book/references.bib``.
PAPERS = {"Ghorbani et al. (2019)": "ghorbani2019interpretation",
          "Dombrowski et al. (2019)": "dombrowski2019explanations",
          "Heo et al. (2019)": "heo2019fooling", "Slack et al. (2020)": "slack2020fooling",
          "Dimanov et al. (2020)": "dimanov2020you", "Adebayo et al. (2018)": "adebayo2018sanity"}
_CITED = re.compile(r"\(([A-Z][A-Za-z-]+ et al\.) (\d{4})[^()]*\)\s*$")


def _label(name: str) -> str:
    return attack_label(name)


def _paper(description: str) -> str:
    """"Ghorbani et al. (2019)" from a description ending in "(Ghorbani et al. 2019)"; "–" without one."""
    m = _CITED.search(description or "")
    return f"{m[1]} ({m[2]})" if m else "–"


def input_attacks() -> tuple[str, ...]:
    """The input attacks of :data:`xaifool.attacks.input.ATTACKS`, one per distinct objective: an
    objective whose loss another, earlier one already has (``location`` is ``region`` under Heo et al.'s
    name) is the same input attack and gets no row of its own."""
    from ..attacks import input as A
    from ..attacks import objectives as O

    seen, out = set(), []
    for name in A.ATTACKS:
        loss = O.OBJECTIVES[name].loss if name in O.OBJECTIVES else name
        if loss in seen:
            continue
        seen.add(loss)
        out.append(name)
    return tuple(out)


def input_runs() -> dict[str, dict[str, tuple[str, ...]]]:
    """``{attack: {base model key: interpreters}}``: the input attacks chapters 02a–04 run, read from
    the parts of :func:`xaifool.book.experiments.input_part_names` — the (attack, interpreter, ε) grid
    and the region and target-map attacks on the ResNet-20, the random and top-k attacks on MobileNetV2."""
    from .experiments import input_part_names

    runs: dict[str, dict[str, list[str]]] = {}

    def add(attack, base, method):
        methods = runs.setdefault(attack, {}).setdefault(base, [])
        if method not in methods:
            methods.append(method)

    for part in input_part_names():
        if part.startswith("grid/"):
            _, method, attack, _ = part.split("/")
            add(attack, "cifar_resnet20", method)
        elif part == "region":
            add("region", "cifar_resnet20", "gradient")
        elif part.startswith("target_"):
            add("target", "cifar_resnet20", part.removeprefix("target_"))
        elif part.startswith("imagenet_"):
            for attack in ("random", "topk"):
                add(attack, "mobilenet_v2", part.removeprefix("imagenet_"))
    return {a: {b: tuple(m) for b, m in per.items()} for a, per in runs.items()}


def _against(per_base: dict) -> str:
    return "; ".join(f"{_method_labels(methods)} ({_base_label(base)})" for base, methods in per_base.items())


NOT_RUN = "registered; not run by this build"


def methods_frame() -> pd.DataFrame:
    """The manipulation methods as the book runs them in the active profile: one row per input attack
    (:func:`input_attacks`), per registered model attack (Heo et al.), and for Slack et al.'s
    scaffolding, Dimanov et al.'s concealment and Adebayo et al.'s randomisation checks."""
    from ..attacks import objectives as O
    from ..attacks import scaffold as T
    from ..attacks.heo.registry import MODEL_ATTACKS
    from ..config import get_config
    from ..data import TABULAR_DATASETS
    from .experiments import SANITY_METHODS
    from .paper import DATASET_TITLES

    P = get_config().profile
    rows = []
    runs = input_runs()
    tables = ", ".join(DATASET_TITLES.get(n, n) for n in TABULAR_DATASETS)
    for name in input_attacks():
        objective = O.OBJECTIVES.get(name)
        paper = "Ghorbani et al. (2019)" if name == "random" else _paper(objective.description)
        goal = _INPUT_GOALS.get(name) or re.sub(r"\s*\([^()]*\)\s*$", "", objective.description)
        ran = runs.get(name)
        rows.append({"method": _label(name), "paper": paper, "level": "input",
                     "what it changes": f"the image, within ‖δ‖∞ ≤ ε: {goal}",
                     "run against": _against(ran) if ran else NOT_RUN,
                     "chapter": chapter_link("chap-input-manipulation") if ran else "–"})
    grids = {base: tuple(getattr(P, field)) for base, field in HEO_GRIDS.items()}
    for name, attack in MODEL_ATTACKS.items():
        per_base = {base: tuple(m for a, m in pairs if a == name) for base, pairs in grids.items()}
        per_base = {b: m for b, m in per_base.items() if m}
        rows.append({"method": _label(name), "paper": "Heo et al. (2019)", "level": "model",
                     "what it changes": f"the weights, fine-tuned with the accuracy kept: {attack.description}",
                     "run against": _against(per_base) if per_base else NOT_RUN,
                     "chapter": chapter_link("chap-model-manipulation") if per_base else "–"})
    rows += [
        {"method": "scaffolding", "paper": "Slack et al. (2020)", "level": "model",
         "what it changes": "the model's answers off the data: a wrapper sends the explainer's synthetic probes "
                            "to an innocuous classifier and real rows to a biased one",
         "run against": f"{_method_labels(T.SCAFFOLD_EXPLAINERS)}; on {tables}",
         "chapter": chapter_link("exp-scaffolding")},
        {"method": "concealment", "paper": "Dimanov et al. (2020)", "level": "model",
         "what it changes": "the weights, fine-tuned with a penalty on the gradient of the sensitive feature",
         "run against": f"penalised: {_method_labels(['gradient'])}; measured: "
                        f"{_method_labels(['gradient', *T.SCAFFOLD_EXPLAINERS])}; on {tables}",
         "chapter": chapter_link("exp-concealment")},
        {"method": "randomisation checks", "paper": "Adebayo et al. (2018)", "level": "model and data",
         "what it changes": "a check, not an attack: the weights re-initialised block by block, or the "
                            "labels permuted before training",
         "run against": f"{_method_labels(SANITY_METHODS)} ({_base_label('mobilenet_v2')}, "
                        f"{_base_label('cifar_resnet20')}); each manipulated ResNet-20 with the interpreter "
                        "it targets",
         "chapter": chapter_link("chap-sanity-checks")},
    ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------

def _cell(value) -> str:
    text = "–" if value is None or (isinstance(value, float) and value != value) else str(value)
    return text.replace("\n", " ").replace("|", "\\|").strip()


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` (its columns, not its index) as a Markdown pipe table; cells are written as they are
    (they may hold MyST roles such as ``{ref}`` links and Markdown links), ``|`` escaped."""
    if frame.empty or not len(frame.columns):
        raise ValueError("frame must hold at least one row and one column")
    head = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])
