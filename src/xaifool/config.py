"""Run-time configuration: the ``quick`` / ``full`` profiles, device, seeds, directories.

One frozen dataclass, read once from the environment:

``XAIFOOL_PROFILE``  ``quick`` (default: CPU-sized, whole book in minutes) or ``full``
                     (paper-scale sizes; uses a GPU when one is present); ``smoke`` is for
                     tests only: the full profile's settings with tiny sizes, so that the
                     full profile's code paths run in seconds on a CPU.
``XAIFOOL_DEVICE``   force a torch device (``cpu``, ``cuda``, ``cuda:1``); default: ``cuda``
                     when available, else ``cpu``.
``XAIFOOL_CACHE``    where cached artefacts go (default ``<repo>/.cache/xaifool``).
``XAIFOOL_DATA``     a local data mirror searched before ``<repo>/../shared/data``.

A profile only changes *sizes*; every chapter calls the same functions in both.
"""
from __future__ import annotations

import contextlib
import os
import random
import warnings
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

PROFILES = ("quick", "full", "smoke")

#: The repository root (``src/xaifool/config.py`` → three levels up).
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Profile:
    """Sizes of every experiment; ``quick`` and ``full`` differ only here."""

    name: str
    seed: int
    #: ImageNet sample images used in figures and agreement tables.
    n_images: int
    #: CIFAR-10 test images used by image experiments.
    n_cifar: int
    #: Batch size for forward/backward passes on the device.
    batch_size: int
    #: Noise samples for SmoothGrad and steps for Integrated Gradients.
    smoothgrad_samples: int
    ig_steps: int
    #: Perturbation samples for LIME / KernelSHAP on images (superpixels) and tables.
    lime_image_samples: int
    lime_samples: int
    shap_samples: int
    #: Background rows summarised for KernelSHAP on tables.
    shap_background: int
    #: Rows of a tabular test set explained with LIME / KernelSHAP.
    n_tabular_explain: int
    #: Epochs (passes over the training split, 4 mini-batches each) for the small tabular models.
    tabular_epochs: int
    #: Images timed per interpreter in the cost table.
    n_timing_images: int
    #: Images used to report a classifier's accuracy (ImageNet samples / CIFAR-10 test).
    n_accuracy_imagenet: int
    n_accuracy_cifar: int
    # --- input-manipulation attacks (fields with defaults = quick values; FULL overrides) ---
    #: Correctly classified CIFAR-10 images attacked, and ImageNet images in before/after figures.
    attack_n_cifar: int = 16
    attack_n_imagenet: int = 2
    #: Signed-gradient steps of the Ghorbani attacks (CIFAR-10 / ImageNet) and of Dombrowski's.
    attack_iters: int = 12
    attack_iters_imagenet: int = 6
    dombrowski_iters: int = 60
    #: Images per device batch in the attacks.
    attack_batch_size: int = 32
    #: IG steps / SmoothGrad samples inside attacked explanations (cost × this per step).
    attack_ig_steps: int = 4
    attack_smoothgrad_samples: int = 4
    # --- end input-manipulation attacks ---
    # --- tabular attacks (fields with defaults = quick values; FULL overrides) ---
    #: Training rows whose LIME / KernelSHAP queries train Slack et al.'s out-of-distribution detector.
    scaffold_detector_rows: int = 40
    #: Fine-tuning epochs of Dimanov et al.'s concealment (4 mini-batches per epoch).
    concealment_epochs: int = 40
    #: Cap on the training rows of Slack et al.'s detectors (None: their full synthetic sets).
    scaffold_detector_max_rows: int | None = 20000
    #: Shares of the test splits explained in the scaffolding experiments, ((data set, share), …);
    #: data sets not named explain n_tabular_explain rows.
    scaffold_explain_share: tuple = ()
    # --- end tabular attacks ---
    # --- model-manipulation attacks, Heo et al. (fields with defaults = quick values; FULL overrides) ---
    #: CIFAR-10 training images fine-tuned on (<= 4000: a subset of the lossless ones; else the JPEGs).
    heo_n_train: int = 1536
    #: Passes over them, and images per Adam step.
    heo_epochs: int = 1
    heo_batch_size: int = 32
    #: Held-out CIFAR-10 test images on which FSR and accuracy are measured.
    heo_n_test: int = 500
    #: Of those, how many are explained with interpreters the fine-tuning never saw (SmoothGrad, IG).
    heo_n_transfer: int = 64
    #: (attack, interpreter) pairs the model-manipulation chapter fine-tunes: the quick profile
    #: runs every attack against Grad-CAM and top-k against LRP and the gradient; full: all pairs.
    heo_grid: tuple = (("location", "gradcam"), ("topk", "gradcam"), ("center", "gradcam"), ("swap", "gradcam"),
                       ("topk", "lrp"), ("topk", "gradient"))
    #: ImageNet sample images for MobileNetV2 (half fine-tuned on with distillation, half held out).
    heo_n_imagenet: int = 16
    heo_epochs_imagenet: int = 4
    heo_batch_size_imagenet: int = 8
    #: (attack, interpreter) pairs fine-tuned on MobileNetV2 (ImageNet sample images, distillation).
    heo_imagenet_grid: tuple = (("topk", "gradcam"),)
    #: Heo's claim at matched accuracy: the (attack, interpreter) pairs swept over λ × Adam's learning rate
    #: on the ResNet-20, the values swept, and the held-out accuracy drop within which a run counts as
    #: keeping the accuracy (Heo et al. chose λ and learning rates so that top-1 "barely moved").
    heo_sweep_pairs: tuple = (("topk", "gradcam"),)
    heo_sweep_lams: tuple = (3.0, 10.0)
    heo_sweep_lrs: tuple = (1e-4, 3e-4)
    heo_max_drop: float = 0.02
    # --- end model-manipulation attacks ---
    # --- sanity checks (Adebayo et al.) ---
    #: Lossless CIFAR-10 training images and epochs of the data-randomisation models (ResNet-20 from scratch).
    sanity_n_train: int = 1000
    sanity_epochs: int = 10
    #: Images of the randomisation tests (ImageNet samples / CIFAR-10 test images) and the SmoothGrad
    #: samples = Integrated-Gradients steps used there (every randomisation step explains them all).
    sanity_n_imagenet: int = 2
    sanity_n_cifar: int = 16
    sanity_samples: int = 4
    # --- end sanity checks ---
    # --- explaining, uncovering, benchmarking (chapters 05, 07) ---
    #: Noise draws per image of Quantus' Max-Sensitivity and Local Lipschitz Estimate (Quantus: 200),
    #: and how many of the input chapter's images they are computed on.
    noise_samples: int = 8
    noise_n: int = 8
    #: Power-iteration steps of the curvature estimate (largest Hessian eigenvalue per image).
    curvature_iters: int = 10
    #: β values of the β-smoothing defence (Softplus(β) in place of ReLU when explaining), and the
    #: SmoothGrad noise levels (σ as a share of the input range) attacked as defences.
    defence_betas: tuple = (1.0, 3.0, 10.0, 30.0)
    defence_sigmas: tuple = (0.05, 0.15, 0.3)
    #: Images of the defence sweep (the first of the input chapter's images), random-noise draws of the
    #: input detector, and the attack steps there.
    defence_n: int = 8
    defence_target_iters: int = 20
    detector_draws: int = 4
    # --- end explaining, uncovering, benchmarking ---


QUICK = Profile(
    name="quick",
    seed=0,
    n_images=6,
    n_cifar=64,
    batch_size=16,
    smoothgrad_samples=16,
    ig_steps=16,
    lime_image_samples=100,
    lime_samples=500,
    shap_samples=200,
    shap_background=20,
    n_tabular_explain=20,
    tabular_epochs=240,
    n_timing_images=4,
    n_accuracy_imagenet=100,
    n_accuracy_cifar=2000,
)

FULL = Profile(
    name="full",
    seed=0,
    n_images=16,
    n_cifar=1000,
    batch_size=64,
    smoothgrad_samples=50,
    ig_steps=64,
    lime_image_samples=1000,
    lime_samples=5000,
    shap_samples=2000,
    shap_background=100,
    n_tabular_explain=200,
    tabular_epochs=800,
    n_timing_images=16,
    n_accuracy_imagenet=1000,
    n_accuracy_cifar=10000,
    # --- FULL: input-manipulation attacks ---
    attack_n_cifar=256,
    attack_n_imagenet=16,
    attack_iters=50,
    attack_iters_imagenet=300,     # Ghorbani et al.'s ImageNet budget
    dombrowski_iters=1500,         # Dombrowski et al.'s number of steps
    attack_batch_size=128,
    attack_ig_steps=16,
    attack_smoothgrad_samples=16,
    # --- FULL: end input-manipulation attacks ---
    # --- FULL: tabular attacks ---
    scaffold_detector_rows=400,
    concealment_epochs=150,
    scaffold_detector_max_rows=None,  # Slack et al.'s full detector training sets
    scaffold_explain_share=(("compas", 1.0), ("german", 1.0), ("adult", 0.1)),  # every COMPAS / German test row
    # --- FULL: end tabular attacks ---
    # --- FULL: model-manipulation attacks, Heo et al. ---
    heo_n_train=50000,             # all CIFAR-10 training images (JPEG q75)
    heo_epochs=2,
    heo_batch_size=128,
    heo_n_test=2000,
    heo_n_transfer=1000,
    heo_n_imagenet=1000,           # every ImageNet sample image: 500 fine-tuned on, 500 held out
    heo_epochs_imagenet=10,
    heo_batch_size_imagenet=32,
    heo_imagenet_grid=(("location", "gradcam"), ("topk", "gradcam"), ("center", "gradcam"), ("topk", "lrp"),
                       ("topk", "gradient")),
    heo_grid=tuple((a, m) for a in ("location", "topk", "center", "swap") for m in ("gradcam", "lrp", "gradient")),
    heo_sweep_pairs=tuple((a, m) for a in ("location", "topk", "center") for m in ("gradcam", "lrp", "gradient")),
    heo_sweep_lams=(1.0, 3.0, 10.0, 30.0),
    heo_sweep_lrs=(1e-5, 1e-4, 3e-4),
    # --- FULL: end model-manipulation attacks ---
    sanity_n_train=4000,           # every lossless training image
    sanity_epochs=60,
    sanity_n_imagenet=16,
    sanity_n_cifar=200,
    sanity_samples=50,             # SmoothGrad samples as Adebayo et al.
    noise_samples=50,
    noise_n=256,
    defence_target_iters=100,
    curvature_iters=30,
    defence_betas=(0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0),
    defence_sigmas=(0.05, 0.1, 0.15, 0.2, 0.3),
    defence_n=256,
    detector_draws=16,
)


#: Tests only: every setting of FULL that is not a size (batch sizes, interpreter options inside
#: attacks, k on ImageNet) with tiny sizes, so that the full profile's code paths run in seconds.
SMOKE = replace(
    FULL,
    name="smoke",
    n_images=2,
    n_cifar=8,
    n_tabular_explain=2,
    lime_samples=60,
    shap_samples=40,
    shap_background=4,
    tabular_epochs=4,
    n_timing_images=1,
    n_accuracy_imagenet=4,
    n_accuracy_cifar=32,
    attack_n_cifar=3,
    attack_n_imagenet=1,
    attack_iters=2,
    attack_iters_imagenet=2,
    dombrowski_iters=2,
    attack_ig_steps=2,
    attack_smoothgrad_samples=2,
    smoothgrad_samples=2,
    ig_steps=2,
    lime_image_samples=20,
    scaffold_detector_rows=6,
    concealment_epochs=2,
    scaffold_detector_max_rows=2000,
    scaffold_explain_share=(),
    heo_n_train=64,
    heo_epochs=1,
    heo_n_test=64,
    heo_n_transfer=4,
    sanity_n_train=64,
    sanity_epochs=1,
    sanity_n_imagenet=1,
    sanity_n_cifar=2,
    sanity_samples=2,
    noise_samples=2,
    noise_n=2,
    defence_target_iters=2,
    curvature_iters=2,
    defence_betas=(1.0, 10.0),
    defence_sigmas=(0.1,),
    defence_n=2,
    detector_draws=2,
    heo_n_imagenet=4,
    heo_epochs_imagenet=1,
    heo_sweep_pairs=(("topk", "gradcam"),),
    heo_sweep_lams=(3.0,),
    heo_sweep_lrs=(3e-4,),
)


@dataclass(frozen=True)
class Config:
    """The active profile plus device and directories."""

    profile: Profile
    device: torch.device
    cache_dir: Path
    data_dirs: tuple[Path, ...]

    @property
    def seed(self) -> int:
        return self.profile.seed


def _profile_from_env(value: str | None) -> Profile:
    name = (value or "quick").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"XAIFOOL_PROFILE must be one of {PROFILES}, got {value!r}")
    return {"quick": QUICK, "full": FULL, "smoke": SMOKE}[name]


def _device_from_env(value: str | None) -> torch.device:
    if value:
        try:
            dev = torch.device(value)
        except RuntimeError as err:
            raise ValueError(f"XAIFOOL_DEVICE must be a torch device such as 'cpu' or 'cuda', got {value!r}") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"XAIFOOL_DEVICE={value!r} but no CUDA device is available; use 'cpu'")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def data_dirs_from_env() -> tuple[Path, ...]:
    """The local mirrors searched before any download, in order."""
    dirs = []
    env = os.environ.get("XAIFOOL_DATA")
    if env:
        dirs.append(Path(env).expanduser().resolve())
    shared = (REPO_ROOT.parent / "shared" / "data").resolve()
    if shared.is_dir():
        dirs.append(shared)
    return tuple(dirs)


@lru_cache(maxsize=1)
def get_config() -> Config:
    """The configuration, read once from the environment (see module docstring)."""
    profile = _profile_from_env(os.environ.get("XAIFOOL_PROFILE"))
    device = _device_from_env(os.environ.get("XAIFOOL_DEVICE"))
    if profile.name == "full" and device.type == "cpu":
        warnings.warn(
            "XAIFOOL_PROFILE=full on a CPU: the paper-scale settings will take a long time "
            "(hours for the attack chapters); use a GPU or the quick profile.",
            stacklevel=2,
        )
    cache = Path(os.environ.get("XAIFOOL_CACHE") or REPO_ROOT / ".cache" / "xaifool").expanduser().resolve()
    return Config(profile=profile, device=device, cache_dir=cache, data_dirs=data_dirs_from_env())


def override(**sizes) -> Profile:
    """A copy of the active profile with some sizes changed (for tests and exercises)."""
    names = {f.name for f in fields(Profile)}
    bad = sorted(set(sizes) - names)
    if bad:
        raise ValueError(f"override() got unknown profile field(s) {bad}; accepted: {sorted(names)}")
    return replace(get_config().profile, **sizes)


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread inside the block (restored afterwards).

    For the tiny tabular networks (32 hidden units): a second thread brings nothing and, on a
    busy 2-core machine, its spin-waiting costs several times the useful work.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def seed_everything(seed: int | None = None) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) with the profile's seed (or ``seed``)."""
    seed = get_config().seed if seed is None else int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def device_name(device: torch.device | str | None = None) -> str:
    """The GPU's name for a CUDA device, else the CPU's model name (Linux), else the architecture."""
    dev = torch.device(device) if device is not None else get_config().device
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:  # platform.processor() only says "x86_64" on Linux
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def describe() -> str:
    """One line saying which profile and device this run uses (printed by every chapter)."""
    cfg = get_config()
    threads = torch.get_num_threads()
    return (
        f"profile={cfg.profile.name} device={cfg.device} torch={torch.__version__} "
        f"threads={threads} seed={cfg.seed}"
    )
