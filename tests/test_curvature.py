"""Tests for xaifool.curvature against dense Hessians (torch.autograd.functional.hessian), and for the
β-smoothing (models.smooth) the curvature is measured on."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from xaifool import curvature as K
from xaifool.models import cifar_resnet, smooth

SHAPE = (4, 3, 2, 2)
WEIGHT_SEED = 1   # its images' largest-magnitude eigenvalues are well separated (checked below)


def _net(seed: int, act: nn.Module | None = None) -> nn.Module:
    """Flatten → Linear(12, 8) → act (Softplus(β=2)) → Linear(8, 3), float64, eval, weights from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), act or nn.Softplus(beta=2), nn.Linear(8, 3))
    return net.double().eval()


def _rand(seed: int, shape=SHAPE, normal: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn if normal else torch.rand)(*shape, generator=g, dtype=torch.float64)


def _dense_hessian(model: nn.Module, xi: torch.Tensor, cls: int) -> torch.Tensor:
    """(d, d) Hessian of logit ``cls`` w.r.t. one image ``xi`` (C, H, W)."""
    d = xi.numel()
    return torch.autograd.functional.hessian(lambda z: model(z.unsqueeze(0))[0, cls], xi).reshape(d, d)


@pytest.fixture(scope="module")
def case():
    model, x, v = _net(WEIGHT_SEED), _rand(1), _rand(2, normal=True)
    target = model(x).argmax(1)
    hessians = [_dense_hessian(model, x[i], int(target[i])) for i in range(len(x))]
    return model, x, v, target, hessians


# --------------------------------------------------------------------------------- against dense Hessians
def test_hvp_matches_the_dense_hessian(case):
    model, x, v, target, hessians = case
    got = K.hessian_vector_product(model, x, v)
    assert got.shape == x.shape and got.dtype == torch.float64 and not got.requires_grad
    for i, h in enumerate(hessians):
        assert torch.allclose(got[i].reshape(-1), h @ v[i].reshape(-1), atol=1e-10, rtol=0)
    assert got.abs().max() > 1e-3                         # the comparison is not of zeros


def test_hvp_for_a_given_target_matches_the_dense_hessian_of_that_logit(case):
    model, x, v, target, _ = case
    other = (target + 1) % 3
    got = K.hessian_vector_product(model, x, v, other)
    for i in range(len(x)):
        ref = _dense_hessian(model, x[i], int(other[i])) @ v[i].reshape(-1)
        assert torch.allclose(got[i].reshape(-1), ref, atol=1e-10, rtol=0)
    assert torch.equal(K.hessian_vector_product(model, x, v, target), K.hessian_vector_product(model, x, v))


def test_top_eigenvalue_matches_the_dense_spectrum(case):
    model, x, _, _, hessians = case
    expected = []
    for h in hessians:
        eig = torch.linalg.eigvalsh(h)
        eig = eig[eig.abs().argsort(descending=True)]
        assert eig[1].abs() < 0.9 * eig[0].abs()       # separated: power iteration converges
        expected.append(eig[0])
    expected = torch.stack(expected)
    assert (expected < 0).any() or (expected > 0).any()
    got = K.top_hessian_eigenvalue(model, x, n_iter=200)
    assert got.shape == (len(x),) and got.dtype == torch.float64
    assert torch.allclose(got, expected, atol=1e-4, rtol=0)


def test_top_eigenvalue_has_the_sign_of_the_eigenvalue():
    """Weights whose images' dominant eigenvalue is negative: the Rayleigh quotient keeps the sign."""
    model = _net(2)
    x = _rand(1)
    t = model(x).argmax(1)
    expected = torch.stack([(e := torch.linalg.eigvalsh(_dense_hessian(model, x[i], int(t[i]))))[e.abs().argmax()]
                            for i in range(len(x))])
    assert (expected < 0).all()
    assert torch.allclose(K.top_hessian_eigenvalue(model, x, n_iter=200), expected, atol=1e-4, rtol=0)


def test_directional_curvature_is_the_norm_of_the_product_over_the_length(case):
    model, x, v, _, hessians = case
    got = K.directional_curvature(model, x, v)
    for i, h in enumerate(hessians):
        d = v[i].reshape(-1)
        assert abs(float(got[i]) - float((h @ d).norm() / d.norm())) < 1e-12
        assert float(got[i]) <= float(torch.linalg.eigvalsh(h).abs().max()) + 1e-12
    assert torch.allclose(K.directional_curvature(model, x, 7.5 * v), got, atol=1e-14, rtol=0)


def test_a_zero_direction_has_zero_curvature(case):
    model, x, v, _, _ = case
    d = v.clone()
    d[1] = 0
    got = K.directional_curvature(model, x, d)
    assert got[1] == 0 and (got[[0, 2, 3]] > 0).all()
    assert torch.equal(got[[0, 2, 3]], K.directional_curvature(model, x, v)[[0, 2, 3]])


# ------------------------------------------------------------------------------------ batched = per image
def test_batched_equals_per_image(case):
    model, x, v, _, _ = case
    hvp = K.hessian_vector_product(model, x, v)
    curv = K.directional_curvature(model, x, v)
    lam = K.top_hessian_eigenvalue(model, x, n_iter=200)
    for i in range(len(x)):
        one = slice(i, i + 1)
        assert torch.allclose(hvp[one], K.hessian_vector_product(model, x[one], v[one]), atol=1e-14, rtol=0)
        assert torch.allclose(curv[one], K.directional_curvature(model, x[one], v[one]), atol=1e-14, rtol=0)
        # the random start differs (drawn for another shape); both converged
        assert torch.allclose(lam[one], K.top_hessian_eigenvalue(model, x[one], n_iter=200), atol=1e-10, rtol=0)


def test_eigenvalue_is_deterministic_and_tol_stops_early(case):
    model, x, _, _, _ = case
    a = K.top_hessian_eigenvalue(model, x, n_iter=5, seed=3)
    assert torch.equal(a, K.top_hessian_eigenvalue(model, x, n_iter=5, seed=3))
    assert not torch.equal(a, K.top_hessian_eigenvalue(model, x, n_iter=5, seed=4))
    full = K.top_hessian_eigenvalue(model, x, n_iter=200)
    early = K.top_hessian_eigenvalue(model, x, n_iter=200, tol=1e-12)
    assert torch.allclose(early, full, atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------- calling context and model
def test_works_under_no_grad_and_leaves_the_parameters_alone(case):
    model, x, v, _, _ = case
    model[1].weight.requires_grad_(False)
    try:
        flags = [p.requires_grad for p in model.parameters()]
        before = [p.detach().clone() for p in model.parameters()]
        ref = K.hessian_vector_product(model, x, v)
        with torch.no_grad():
            got = K.hessian_vector_product(model, x, v)
            lam = K.top_hessian_eigenvalue(model, x, n_iter=3)
            curv = K.directional_curvature(model, x, v)
        assert torch.equal(got, ref) and lam.shape == (4,) and curv.shape == (4,)
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
        assert all(p.grad is None for p in model.parameters())
        with pytest.raises(ValueError, match="target"):     # raised while the flags are off: restored
            K.top_hessian_eigenvalue(model, x, torch.tensor([0, 5, 0, 0]))
        assert [p.requires_grad for p in model.parameters()] == flags
    finally:
        model[1].weight.requires_grad_(True)


def test_a_relu_network_has_zero_curvature_and_its_smooth_copy_does_not():
    relu_net = _net(WEIGHT_SEED, nn.ReLU())
    x, v = _rand(1), _rand(2, normal=True)
    assert torch.equal(K.hessian_vector_product(relu_net, x, v), torch.zeros_like(x))
    assert torch.equal(K.top_hessian_eigenvalue(relu_net, x), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(K.directional_curvature(relu_net, x, v), torch.zeros(4, dtype=torch.float64))
    soft = smooth(relu_net, 2.0)
    assert (K.hessian_vector_product(soft, x, v).reshape(4, -1).norm(dim=1) > 1e-4).all()
    assert (K.top_hessian_eigenvalue(soft, x).abs() > 1e-4).all()


def test_linear_and_constant_models_have_zero_curvature():
    x, v = _rand(1), _rand(2, normal=True)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.randn(3, dtype=torch.float64))

        def forward(self, z):
            return self.bias.expand(len(z), 3)

    for model in (linear, Constant()):
        assert torch.equal(K.hessian_vector_product(model, x, v), torch.zeros_like(x))
        assert torch.equal(K.top_hessian_eigenvalue(model, x, n_iter=3), torch.zeros(4, dtype=torch.float64))
        assert torch.equal(K.directional_curvature(model, x, v), torch.zeros(4, dtype=torch.float64))


def test_smoothed_networks_converge_to_the_relu_network_as_beta_grows():
    """models.smooth: the largest output difference from the ReLU network falls strictly with β."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = cifar_resnet(20).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
        gaps = [float((smooth(model, beta)(x) - ref).abs().max()) for beta in (0.5, 1, 2, 5, 10, 30, 100)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.01 * gaps[0]


# -------------------------------------------------------------------------------------------- errors
def test_errors_name_the_argument(case):
    model, x, v, target, _ = case
    with pytest.raises(ValueError, match="n_iter"):
        K.top_hessian_eigenvalue(model, x, n_iter=0)
    with pytest.raises(ValueError, match="tol"):
        K.top_hessian_eigenvalue(model, x, tol=0.0)
    with pytest.raises(ValueError, match="seed"):
        K.top_hessian_eigenvalue(model, x, seed=-1)
    with pytest.raises(ValueError, match="^v "):
        K.hessian_vector_product(model, x, v[:, :2])
    with pytest.raises(ValueError, match="^v "):
        K.hessian_vector_product(model, x, v.reshape(4, -1))
    with pytest.raises(ValueError, match="^v "):
        K.hessian_vector_product(model, x, torch.full_like(v, float("nan")))
    with pytest.raises(ValueError, match="^direction "):
        K.directional_curvature(model, x, v[:3])
    with pytest.raises(ValueError, match="^target "):
        K.hessian_vector_product(model, x, v, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="^target "):
        K.top_hessian_eigenvalue(model, x, torch.tensor([0, -1, 0, 0]))
    with pytest.raises(ValueError, match="^target "):
        K.directional_curvature(model, x, v, target[:2])
    with pytest.raises(ValueError, match="^target "):
        K.hessian_vector_product(model, x, v, target.double())
    with pytest.raises(ValueError, match="^model "):
        K.hessian_vector_product(lambda z: z, x, v)
    with pytest.raises(ValueError, match="^model "):
        K.top_hessian_eigenvalue(nn.Identity(), x)       # returns images, not (N, K) logits
    with pytest.raises(ValueError, match="^model .*eval mode.*BatchNorm2d"):
        K.hessian_vector_product(nn.Sequential(nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 3)).double(), x, v)
    with pytest.raises(ValueError, match="^model .*eval mode.*Dropout"):
        K.directional_curvature(nn.Sequential(nn.Flatten(), nn.Dropout(), nn.Linear(12, 3)).double(), x, v)
    with pytest.raises(ValueError, match="^x "):
        K.hessian_vector_product(model, x.reshape(4, 12), v.reshape(4, 12))
    with pytest.raises(ValueError, match="^x "):
        K.directional_curvature(model, x + 2, v)
