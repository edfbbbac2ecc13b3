"""Classifiers used in the book, with their weights.

Every image model takes pixels in [0, 1] and normalises internally (:class:`Normalized`),
so explanations and attacks live in pixel space and ε is in units of 1/255.

* :func:`load_imagenet_classifier` — torchvision MobileNetV2 with the dequantized float
  weights of the mirror (derived from the original TorchScript file by
  :func:`dequantize_mobilenet_v2` when the derived file is not at hand).
* :func:`load_cifar_resnet` — the CIFAR-10 ResNet-20/32/44/56 of He et al. (2016) with
  option-A shortcuts, as trained by Idelbayev (weights in the mirror).
* :func:`train_tabular_model` — logistic regression or a small MLP for the tabular data
  sets, trained on first use and cached.
* :func:`smooth` — swap ReLU/ReLU6 for Softplus(β) (second-order attacks, β-smoothing).
"""
from __future__ import annotations

import copy
import re
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cache import atomic_save, cached
from .config import get_config, one_thread
from .data import DataFileError, REGISTRY, TabularDataset, fetch

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "Normalized", "dequantize_mobilenet_v2", "load_imagenet_classifier",
    "CifarResNet", "cifar_resnet", "load_cifar_resnet", "Standardize", "train_tabular_model",
    "smooth", "set_beta", "SmoothReLU6", "DepthwiseShifts", "depthwise_as_shifts", "depthwise_as_convs", "accuracy", "predict", "channels_last",
    "device_of", "BasicBlock", "ShortcutA",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalized(nn.Module):
    """``net((x - mean) / std)`` for x in [0, 1]; ``cam_layer`` names the layer Grad-CAM uses."""

    def __init__(self, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, cam_layer: str = ""):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.cam_layer = cam_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


# --------------------------------------------------------------------------------------
# ImageNet: MobileNetV2
# --------------------------------------------------------------------------------------

_HOIST = re.compile(r"^_jit_pass_hoist_conv_packed_params\.(?P<conv>.+)\._packed_params\.\d+$")


def dequantize_mobilenet_v2(torchscript_path) -> dict[str, torch.Tensor]:
    """Float ``state_dict`` for ``torchvision.models.mobilenet_v2()`` from the quantized TorchScript file.

    Each fused conv's int8 weight is dequantized; its fused bias goes into the BatchNorm that
    follows it, which becomes "identity + bias" in eval mode (weight 1, mean 0,
    var 1 − eps). The classifier's linear layer is dequantized likewise. This is the recipe
    of the mirror's MANIFEST; a test checks that it reproduces the mirror file exactly.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated in torch ≥ 2.10
        ts = torch.jit.load(str(torchscript_path), map_location="cpu")
        names = re.findall(r'getattr\(self, "(_jit_pass_hoist_conv_packed_params[^"]+)"\)', ts.code)
        import torchvision

        sd = torchvision.models.mobilenet_v2().state_dict()
        eps = 1e-5
        for hoisted in names:
            conv = _HOIST.match(hoisted)["conv"]
            w, b = torch.ops.quantized.conv2d_unpack(ts._c.getattr(hoisted))
            sd[f"{conv}.weight"] = w.dequantize().contiguous()
            parent, i = conv.rsplit(".", 1)
            bn = f"{parent}.{int(i) + 1}"
            bias = b if b is not None else torch.zeros(w.shape[0])
            sd[f"{bn}.weight"] = torch.ones_like(bias)
            sd[f"{bn}.bias"] = bias.detach().clone().float()
            sd[f"{bn}.running_mean"] = torch.zeros_like(bias)
            sd[f"{bn}.running_var"] = torch.full_like(bias, 1.0 - eps)
            sd[f"{bn}.num_batches_tracked"] = torch.tensor(0)
        lw, lb = torch.ops.quantized.linear_unpack(getattr(ts.classifier, "1")._packed_params._packed_params)
        sd["classifier.1.weight"] = lw.dequantize().contiguous()
        sd["classifier.1.bias"] = lb.detach().clone().float()
    if len(names) != 52:
        raise ValueError(f"torchscript_path {torchscript_path} holds {len(names)} conv layers, expected the 52 "
                         "of MobileNetV2: is it the ios-demo-app mobilenet_quantized.pt?")
    return sd


def _mobilenet_state_dict() -> dict[str, torch.Tensor]:
    try:
        return torch.load(fetch("mobilenet_v2_dequantized_float.pth"), map_location="cpu", weights_only=True)
    except DataFileError:
        # Not in a mirror: derive it from the original file (downloaded if need be) and cache it.
        target = get_config().cache_dir / "data" / REGISTRY["mobilenet_v2_dequantized_float.pth"].path
        if not target.exists():
            atomic_save(dequantize_mobilenet_v2(fetch("mobilenet_quantized.pt")), target)
        return torch.load(target, map_location="cpu", weights_only=True)


def load_imagenet_classifier(activation: str = "relu", device=None) -> Normalized:
    """MobileNetV2 (Sandler et al. 2018) on ImageNet, in eval mode, inputs in [0, 1].

    activation: ``"relu"`` (default) or ``"relu6"``. The quantized source model was trained
                with ReLU (MANIFEST: 83.2 % vs 82.7 % top-1 on the 1000 sample images), and
                ReLU keeps LRP rules and Softplus smoothing exact, so the book uses ReLU.
    """
    import torchvision

    if activation not in ("relu", "relu6"):
        raise ValueError(f"activation must be 'relu' or 'relu6', got {activation!r}")
    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(_mobilenet_state_dict())
    if activation == "relu":
        _replace_modules(net, nn.ReLU6, lambda m: nn.ReLU())
    model = Normalized(net, cam_layer="net.features.18")
    return model.eval().to(device or get_config().device)


# --------------------------------------------------------------------------------------
# CIFAR-10: ResNet-20/32/44/56 with option-A shortcuts
# --------------------------------------------------------------------------------------

class ShortcutA(nn.Module):
    """Parameter-free shortcut: subsample by 2 and zero-pad the channels (He et al. option A)."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()  # separate module instances: interpreters hook modules, not functions
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.shortcut = ShortcutA(planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 inputs (He et al. 2016, §4.2); module names match the weights."""

    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        layers, in_planes = [], 16
        for planes, stride in [(16, 1), (32, 2), (64, 2)]:
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(self.pool(out), 1))


CIFAR_DEPTHS = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th",
                56: "resnet56-4bfd9763.th"}


def cifar_resnet(depth: int = 20) -> CifarResNet:
    """An untrained CIFAR ResNet of the given depth (20, 32, 44 or 56)."""
    if depth not in CIFAR_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(CIFAR_DEPTHS)}, got {depth!r}")
    return CifarResNet((depth - 2) // 6)


def cifar_reported_accuracy(depth: int = 20) -> float:
    """Test accuracy (in [0, 1]) stored in the checkpoint (``best_prec1``, on the lossless test set)."""
    if depth not in CIFAR_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(CIFAR_DEPTHS)}, got {depth!r}")
    return float(torch.load(fetch(CIFAR_DEPTHS[depth]), map_location="cpu", weights_only=True)["best_prec1"]) / 100


def load_cifar_resnet(depth: int = 20, device=None) -> Normalized:
    """Pretrained CIFAR-10 ResNet (Idelbayev's weights), eval mode, inputs in [0, 1]."""
    net = cifar_resnet(depth)
    ck = torch.load(fetch(CIFAR_DEPTHS[depth]), map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("module."): v for k, v in ck["state_dict"].items()})
    return Normalized(net, cam_layer="net.layer3").eval().to(device or get_config().device)


# --------------------------------------------------------------------------------------
# Tabular models
# --------------------------------------------------------------------------------------

class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed statistics, so tabular models take raw features."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def forward(self, x):
        return (x - self.mean) / self.std


def _tabular_net(kind: str, d: int, hidden: int) -> nn.Sequential:
    if kind == "logreg":
        return nn.Sequential(Standardize(torch.zeros(d), torch.ones(d)), nn.Linear(d, 2))
    return nn.Sequential(Standardize(torch.zeros(d), torch.ones(d)), nn.Linear(d, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))


TABULAR_KINDS = ("logreg", "mlp")


def train_tabular_model(ds: TabularDataset, kind: str = "mlp", *, epochs: int | None = None, hidden: int = 32,
                        lr: float = 1e-2, weight_decay: float = 1e-4, seed: int | None = None) -> nn.Sequential:
    """A classifier (2 logits) for a tabular data set, trained with Adam on the full training split.

    kind:   ``"logreg"`` (logistic regression) or ``"mlp"`` (two hidden ReLU layers of ``hidden``)
    epochs: passes over the training split, each in 4 shuffled mini-batches (default: the
            profile's ``tabular_epochs``)
    Trained with :func:`xaifool.training.fit`; cached on disk, keyed by data set, kind, every setting
    and the source of ``models``, ``data`` and ``training`` (and what they import).
    """
    if kind not in TABULAR_KINDS:
        raise ValueError(f"kind must be one of {TABULAR_KINDS}, got {kind!r}")
    cfg = get_config()
    epochs = cfg.profile.tabular_epochs if epochs is None else int(epochs)
    seed = cfg.seed if seed is None else int(seed)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if hidden < 1 or not lr > 0 or weight_decay < 0:
        raise ValueError(f"hidden must be >= 1, lr > 0 and weight_decay >= 0; got hidden={hidden}, lr={lr}, "
                         f"weight_decay={weight_decay}")
    d = ds.n_features
    settings = dict(data=ds.name, kind=kind, epochs=epochs, hidden=hidden, lr=lr, wd=weight_decay, seed=seed,
                    X=torch.from_numpy(ds.X_train), y=torch.from_numpy(ds.y_train))

    def cross_entropy(model, batch):
        x, y = batch
        logits = model(x)
        return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean()}

    @one_thread()
    def train():
        from .training import fit

        torch.manual_seed(seed)  # seeds the initialisation and then the shuffles
        net = _tabular_net(kind, d, hidden)
        X = torch.from_numpy(ds.X_train)
        y = torch.from_numpy(ds.y_train)
        net[0] = Standardize(X.mean(0), X.std(0))
        fit(net, lambda epoch: [(X[idx], y[idx]) for idx in torch.randperm(len(X)).chunk(4)],  # 4 shuffled batches
            cross_entropy, epochs=epochs, lr=lr, weight_decay=weight_decay, progress=None,
            desc=f"{kind} on {ds.name}")
        return net.state_dict()

    net = _tabular_net(kind, d, hidden)
    net.load_state_dict(cached(f"tabular-{kind}", settings, train,
                               depends=("xaifool.models", "xaifool.data", "xaifool.training")))
    return net.eval()


# --------------------------------------------------------------------------------------
# Smoothing and helpers
# --------------------------------------------------------------------------------------

class SmoothReLU6(nn.Module):
    """Softplus surrogate of ReLU6: ``softplus_β(x) − softplus_β(x − 6)``."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return F.softplus(x, self.beta) - F.softplus(x - 6.0, self.beta)


class DepthwiseShifts(nn.Module):
    """A depthwise ``nn.Conv2d`` (groups = in = out channels, zero padding) computed as a sum of
    shifted, per-channel scaled copies of its input: the same function (to float rounding), with the
    same ``weight`` / ``bias`` parameters (and state-dict names), but made of element-wise ops.

    Why: PyTorch differentiates the backward pass of a grouped convolution (needed by every attack
    that differentiates an explanation) one group at a time — for MobileNetV2's depthwise layers
    some 7,000 small convolutions in one attack step. Measured once on 2 CPU cores (4 images), the
    step took 1.6 s instead of 2.1 s; on a GPU each of those convolutions is a kernel launch, which
    is where the recorded H100 step on MobileNetV2 stood at 0.3 % of the fp32 peak (the benchmark's
    next GPU run measures the difference). Tested to equal the grouped convolution (see :func:`smooth`)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not _is_depthwise(conv):
            raise ValueError("conv must be a depthwise nn.Conv2d (groups == in_channels == out_channels, "
                             f"padding_mode='zeros', numeric padding), got {conv}")
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    def to_conv(self) -> nn.Conv2d:
        """The depthwise ``nn.Conv2d`` again, holding these very parameters."""
        c, k = self.weight.shape[0], tuple(self.weight.shape[-2:])
        conv = nn.Conv2d(c, c, k, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=c,
                         bias=self.bias is not None, device=self.weight.device, dtype=self.weight.dtype)
        conv.weight, conv.bias = self.weight, self.bias
        return conv

    def forward(self, x):
        c = x.shape[1]
        kh, kw = self.weight.shape[-2:]
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        xp = F.pad(x, (pw, pw, ph, ph))
        ho = (xp.shape[-2] - dh * (kh - 1) - 1) // sh + 1
        wo = (xp.shape[-1] - dw * (kw - 1) - 1) // sw + 1
        out = None
        for i in range(kh):
            for j in range(kw):
                tap = xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
                term = tap * self.weight[:, 0, i, j].view(1, c, 1, 1)
                out = term if out is None else out + term
        return out if self.bias is None else out + self.bias.view(1, c, 1, 1)


def _is_depthwise(m) -> bool:
    return (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels
            and m.padding_mode == "zeros" and not isinstance(m.padding, str))


def depthwise_as_shifts(model: nn.Module) -> int:
    """Replace every depthwise ``nn.Conv2d`` of ``model`` in place by :class:`DepthwiseShifts`
    (same parameters); returns how many were replaced."""
    return _replace_modules(model, nn.Conv2d, DepthwiseShifts, where=_is_depthwise)


def depthwise_as_convs(model: nn.Module) -> int:
    """Undo :func:`depthwise_as_shifts` in place (the same parameters in ``nn.Conv2d`` modules)."""
    return _replace_modules(model, DepthwiseShifts, DepthwiseShifts.to_conv)


def _replace_modules(model: nn.Module, kind, make, where=None) -> int:
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, kind) and (where is None or where(child)):
            setattr(model, name, make(child))
            count += 1
        else:
            count += _replace_modules(child, kind, make, where)
    return count


def set_beta(model: nn.Module, beta: float) -> int:
    """Set β of every ``nn.Softplus`` / :class:`SmoothReLU6` of a :func:`smooth` copy in place (a
    Softplus the original network had itself is changed too: meant for copies of ReLU networks)
    (an attack's β schedule sharpens one surrogate instead of copying the network per step);
    returns how many activations were changed and raises if there are none."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta < float("inf"):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    n = 0
    for m in model.modules():
        if isinstance(m, (nn.Softplus, SmoothReLU6)):
            m.beta = float(beta)
            n += 1
    if n == 0:
        raise ValueError("model has no Softplus / SmoothReLU6 activations: set_beta takes a copy made by smooth()")
    return n


def smooth(model: nn.Module, beta: float, *, depthwise_shifts: bool = True) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` → ``Softplus(β)`` and ``nn.ReLU6`` → :class:`SmoothReLU6`.

    As β → ∞ the copy tends to the original network; its second derivatives no longer
    vanish, which gradient-of-explanation attacks need (Dombrowski et al. 2019). Depthwise
    convolutions become :class:`DepthwiseShifts` (the same function, whose double backward pass is
    not computed one channel at a time; ``depthwise_shifts=False`` keeps them). Functional
    activations (``F.relu`` inside ``forward``) cannot be swapped: the function raises if the
    model has no activation modules at all.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    out = copy.deepcopy(model)
    n = _replace_modules(out, nn.ReLU, lambda m: nn.Softplus(beta=beta))
    n += _replace_modules(out, nn.ReLU6, lambda m: SmoothReLU6(beta))
    if n == 0:
        raise ValueError("model has no nn.ReLU / nn.ReLU6 modules to smooth (functional activations "
                         "cannot be replaced)")
    if depthwise_shifts:
        depthwise_as_shifts(out)
    return out.eval()


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (where its inputs must go)."""
    return next(model.parameters()).device


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """An image batch (N, C, H, W) in channels-last memory order (other tensors unchanged).

    For forward-only passes (LIME / KernelSHAP perturbations, accuracy): measured once on 2 CPU cores
    (batches of 64), it made MobileNetV2's forward pass 1.5× and ResNet-20's 1.1× faster, with logits
    equal up to 1e-5. Not used in the attacks: there it made the double backward pass slower (the
    benchmark's variants on the Performance page)."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits of ``model`` on ``x`` (N, ...), in batches on the model's device; returned on CPU."""
    bs = batch_size or get_config().profile.batch_size
    dev = next(model.parameters()).device
    return torch.cat([model(channels_last(x[i:i + bs].to(dev))).float().cpu() for i in range(0, len(x), bs)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None,
             topk: int = 1) -> float:
    """Top-k accuracy in [0, 1]."""
    logits = predict(model, x, batch_size)
    top = logits.topk(topk, dim=1).indices
    return float((top == y.view(-1, 1)).any(1).float().mean())
