"""Tests for xaifool.metrics against scipy / numpy / skimage references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats
import torch

from xaifool import metrics as M

skimage_metrics = pytest.importorskip("skimage.metrics")

SEEDS = [0, 1, 2]
TOL = 1e-5


def _rand(seed: int, shape, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _randint(seed: int, shape, high: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g).to(torch.float64)


def _scipy_stat(fn, x: np.ndarray, y: np.ndarray) -> float:
    return fn(x.ravel(), y.ravel()).statistic


def _skimage_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    return skimage_metrics.structural_similarity(
        x,
        y,
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


# ----------------------------------------------------------------- correlations
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(4, 37), (3, 9, 11)])
def test_spearman_matches_scipy_continuous(seed, shape):
    a, b = _rand(seed, shape), _rand(seed + 100, shape)
    b = b + 0.5 * a  # some positive correlation
    got = M.spearman(a, b)
    assert got.shape == (shape[0],) and got.dtype == torch.float64
    ref = [_scipy_stat(scipy.stats.spearmanr, x, y) for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(5, 30), (2, 6, 7)])
def test_spearman_matches_scipy_with_ties(seed, shape):
    a, b = _randint(seed, shape), _randint(seed + 100, shape)
    got = M.spearman(a, b)
    ref = [_scipy_stat(scipy.stats.spearmanr, x, y) for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_average_ranks_match_scipy_rankdata(seed):
    x = _randint(seed, (6, 25), high=5)
    got = M._average_ranks(x)
    ref = scipy.stats.rankdata(x.numpy(), method="average", axis=1)
    np.testing.assert_array_equal(got.numpy(), ref)


def test_spearman_constant_row_is_nan_like_scipy():
    a = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[4.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0]])
    got = M.spearman(a, b)
    assert torch.isnan(got[0]) and not torch.isnan(got[1])
    with pytest.warns(scipy.stats.ConstantInputWarning):
        assert np.isnan(scipy.stats.spearmanr(a[0], b[0]).statistic)
    assert torch.isnan(M.pearson(a, b)[0])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(4, 37), (3, 9, 11)])
def test_pearson_matches_scipy(seed, shape):
    a, b = _rand(seed, shape), _rand(seed + 100, shape)
    b = b - 0.3 * a
    got = M.pearson(a, b)
    ref = [_scipy_stat(scipy.stats.pearsonr, x, y) for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)


def test_correlations_sign_and_invariances():
    a = _rand(3, (3, 50))
    np.testing.assert_allclose(M.pearson(a, 2 * a + 1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(M.pearson(a, -a).numpy(), -1.0, atol=1e-12)
    # Spearman is invariant to strictly monotone transforms.
    np.testing.assert_allclose(M.spearman(a, torch.exp(a)).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(M.spearman(a, -(a**3)).numpy(), -1.0, atol=1e-12)


# ------------------------------------------------------------------------ top-k
def _topk_reference(x: np.ndarray, y: np.ndarray, k: int) -> float:
    # Continuous random data: no ties, so the top-k sets are unambiguous.
    top_x = set(np.argsort(-x.ravel())[:k].tolist())
    top_y = set(np.argsort(-y.ravel())[:k].tolist())
    return len(top_x & top_y) / k


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 5, 17, 40])
def test_topk_matches_set_reference(seed, k):
    a, b = _rand(seed, (4, 5, 8)), _rand(seed + 100, (4, 5, 8))
    b = b + a  # overlapping top sets
    got = M.topk_intersection(a, b, k)
    assert got.shape == (4,)
    ref = [_topk_reference(x, y, k) for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)


def test_topk_disjoint_and_full():
    a = torch.arange(10.0).unsqueeze(0)
    assert M.topk_intersection(a, -a, 3).item() == 0.0
    assert M.topk_intersection(a, -a, 10).item() == 1.0
    assert M.topk_intersection(a, a, 1).item() == 1.0
    assert M.topk_intersection(a, a, np.int64(4)).item() == 1.0


# --------------------------------------------------------------- centre of mass
@pytest.mark.parametrize("row,col", [(0, 0), (3, 7), (8, 1), (8, 9)])
def test_center_of_mass_single_hot_pixel(row, col):
    h = torch.zeros(2, 9, 10)
    h[0, row, col] = 1.0
    h[1, row, col] = -3.0  # abs value is taken
    got = M.center_of_mass(h)
    assert got.shape == (2, 2)
    torch.testing.assert_close(got, torch.tensor([[row, col], [row, col]], dtype=torch.float32))


@pytest.mark.parametrize("seed", SEEDS)
def test_center_of_mass_matches_scipy(seed):
    h = _rand(seed, (3, 12, 17)).abs()
    got = M.center_of_mass(h)
    ref = np.stack([ndi.center_of_mass(x) for x in h.numpy()])
    np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)
    # signed input: abs is taken first
    np.testing.assert_allclose(M.center_of_mass(-h).numpy(), ref, atol=TOL, rtol=0)


def test_center_of_mass_all_zero_is_image_centre():
    got = M.center_of_mass(torch.zeros(1, 7, 10))
    torch.testing.assert_close(got, torch.tensor([[3.0, 4.5]]))


@pytest.mark.parametrize("seed", SEEDS)
def test_center_of_mass_distance(seed):
    a, b = _rand(seed, (3, 10, 13)), _rand(seed + 100, (3, 10, 13))
    got = M.center_of_mass_distance(a, b)
    ca = np.stack([ndi.center_of_mass(x) for x in np.abs(a.numpy())])
    cb = np.stack([ndi.center_of_mass(x) for x in np.abs(b.numpy())])
    np.testing.assert_allclose(got.numpy(), np.linalg.norm(ca - cb, axis=1), atol=TOL, rtol=0)
    h1, h2 = torch.zeros(1, 10, 10), torch.zeros(1, 10, 10)
    h1[0, 1, 2], h2[0, 4, 6] = 1.0, 5.0
    assert M.center_of_mass_distance(h1, h2).item() == pytest.approx(5.0)


# ------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("hw", [(11, 11), (16, 23), (28, 28)])
def test_ssim_matches_skimage(seed, hw):
    a = _rand(seed, (3, *hw)).abs()
    b = (a + 0.5 * _rand(seed + 100, (3, *hw))).abs()
    got = M.ssim(a, b)
    assert got.shape == (3,) and got.dtype == torch.float64
    ref = []
    for x, y in zip(a.numpy(), b.numpy()):
        rng = max(x.max(), y.max()) - min(x.min(), y.min())
        ref.append(_skimage_ssim(x, y, rng))
    np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_ssim_explicit_data_range_matches_skimage(seed):
    a, b = _rand(seed, (2, 20, 15)), _rand(seed + 100, (2, 20, 15))
    ref = [_skimage_ssim(x, y, 2.0) for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(M.ssim(a, b, data_range=2.0).numpy(), ref, atol=TOL, rtol=0)
    rngs = torch.tensor([2.0, 7.0], dtype=torch.float64)
    ref = [_skimage_ssim(x, y, r) for x, y, r in zip(a.numpy(), b.numpy(), [2.0, 7.0])]
    np.testing.assert_allclose(M.ssim(a, b, data_range=rngs).numpy(), ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_filter_matches_scipy_reflect_including_borders(seed):
    x = _rand(seed, (2, 13, 18))
    got = M._gaussian_filter(x)
    ref = np.stack([ndi.gaussian_filter(m, 1.5, mode="reflect", truncate=3.5) for m in x.numpy()])
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12, rtol=0)


def test_pad_symmetric_matches_numpy():
    x = torch.arange(24.0).view(1, 4, 6)
    got = M._pad_symmetric(M._pad_symmetric(x, 3, 1), 3, 2)
    ref = np.pad(x.numpy(), ((0, 0), (3, 3), (3, 3)), mode="symmetric")
    np.testing.assert_array_equal(got.numpy(), ref)


def test_ssim_constant_identical_maps_is_one():
    a = torch.full((2, 12, 12), 0.3)
    torch.testing.assert_close(M.ssim(a, a.clone()), torch.ones(2))


# -------------------------------------------------------------------------- MSE
@pytest.mark.parametrize("seed", SEEDS)
def test_mse_matches_numpy(seed):
    a, b = _rand(seed, (4, 6, 5)), _rand(seed + 100, (4, 6, 5))
    ref = ((a.numpy() - b.numpy()) ** 2).reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(M.mse(a, b).numpy(), ref, atol=TOL, rtol=0)


# ------------------------------------------------------------ identity / dtypes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identical_inputs(dtype):
    a = _rand(7, (3, 14, 12), dtype=dtype).abs()
    one = torch.ones(3, dtype=dtype)
    for fn in (M.spearman, M.pearson, M.ssim):
        out = fn(a, a.clone())
        assert out.dtype == dtype and out.shape == (3,)
        torch.testing.assert_close(out, one, atol=1e-5, rtol=0)
    assert torch.equal(M.mse(a, a.clone()), torch.zeros(3, dtype=dtype))
    for k in (1, 10, 14 * 12):
        assert torch.equal(M.topk_intersection(a, a.clone(), k), one)
    assert torch.equal(M.center_of_mass_distance(a, a.clone()), torch.zeros(3, dtype=dtype))


def test_float32_close_to_float64():
    a64 = _rand(11, (2, 16, 16)).abs()
    b64 = (a64 + 0.3 * _rand(12, (2, 16, 16))).abs()
    a32, b32 = a64.float(), b64.float()
    for fn in (M.spearman, M.pearson, M.ssim, M.mse, M.center_of_mass_distance):
        out32 = fn(a32, b32)
        assert out32.dtype == torch.float32
        np.testing.assert_allclose(out32.numpy(), fn(a64, b64).numpy(), atol=1e-4, rtol=1e-4)


def test_mixed_dtypes_are_promoted():
    a = _rand(1, (2, 12, 12))
    assert M.pearson(a.float(), a).dtype == torch.float64


# -------------------------------------------------------------------- gradients
def test_gradients_flow():
    a = _rand(0, (2, 12, 13)).abs().requires_grad_()
    b = _rand(1, (2, 12, 13)).abs()
    for fn in (M.pearson, M.ssim, M.mse, M.center_of_mass_distance):
        assert torch.autograd.gradcheck(lambda x, fn=fn: fn(x, b), (a,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(M.center_of_mass, (a,), eps=1e-6, atol=1e-5)
    # rank-based metrics return values without a graph
    assert not M.spearman(a, b).requires_grad
    assert not M.topk_intersection(a, b, 3).requires_grad


def test_pearson_constant_row_does_not_poison_other_gradients():
    a = torch.stack([torch.ones(10), torch.linspace(0, 1, 10)]).double().requires_grad_()
    b = _rand(2, (2, 10))
    out = M.pearson(a, b)
    assert torch.isnan(out[0])
    out.nan_to_num().sum().backward()
    assert torch.isfinite(a.grad).all()
    assert torch.equal(a.grad[0], torch.zeros(10, dtype=torch.float64))


def test_center_of_mass_distance_gradient_finite_at_zero_distance():
    a = _rand(4, (2, 12, 12)).requires_grad_()
    M.center_of_mass_distance(a, a.detach().clone()).sum().backward()
    assert torch.isfinite(a.grad).all()


# --------------------------------------------------------------------- validation
GOOD = torch.rand(2, 12, 12)
PAIR_FUNCS = [M.spearman, M.pearson, M.mse, M.ssim, M.center_of_mass_distance,
              lambda a, b: M.topk_intersection(a, b, 3)]


@pytest.mark.parametrize("fn", PAIR_FUNCS)
def test_shape_mismatch_raises(fn):
    with pytest.raises(ValueError, match=r"`a` and `b`.*identical shapes"):
        fn(GOOD, torch.rand(2, 12, 13))


@pytest.mark.parametrize("fn", PAIR_FUNCS)
@pytest.mark.parametrize("which", ["a", "b"])
def test_bad_tensor_raises_with_name(fn, which):
    with_nan = GOOD.clone()
    with_nan[0, 1, 1] = float("nan")
    bad_inputs = {
        "non-floating": (torch.ones(2, 12, 12, dtype=torch.int64), "floating dtype"),
        "nan": (with_nan, "NaN"),
        "1-d": (torch.rand(12), r"dims"),
        "not tensor": (np.ones((2, 12, 12)), "torch.Tensor"),
    }
    for bad, msg in bad_inputs.values():
        args = (bad, GOOD) if which == "a" else (GOOD, bad)
        with pytest.raises(ValueError, match=rf"`{which}`.*{msg}"):
            fn(*args)


@pytest.mark.parametrize("k", [0, -1, 145, 2.5, True, "3"])
def test_topk_bad_k_raises(k):
    with pytest.raises(ValueError, match=r"`k`.*1\.\.144"):
        M.topk_intersection(GOOD, GOOD, k)


def test_image_functions_need_three_dims():
    with pytest.raises(ValueError, match=r"`h`.*\(B, H, W\)"):
        M.center_of_mass(torch.rand(2, 12))
    with pytest.raises(ValueError, match=r"`h`.*\(B, H, W\)"):
        M.center_of_mass(torch.rand(2, 1, 12, 12))
    with pytest.raises(ValueError, match=r"`h`.*floating"):
        M.center_of_mass(torch.ones(2, 5, 5, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"`h`.*NaN"):
        M.center_of_mass(torch.full((1, 3, 3), float("nan")))
    with pytest.raises(ValueError, match=r"`a`.*\(B, H, W\)"):
        M.ssim(torch.rand(2, 144), torch.rand(2, 144))
    with pytest.raises(ValueError, match=r"`a`.*\(B, H, W\)"):
        M.center_of_mass_distance(torch.rand(2, 144), torch.rand(2, 144))


def test_ssim_too_small_raises():
    with pytest.raises(ValueError, match=r"`a` and `b`.*at least 11x11"):
        M.ssim(torch.rand(2, 10, 20), torch.rand(2, 10, 20))


@pytest.mark.parametrize(
    "dr",
    [0.0, -1.0, float("inf"), float("nan"), "1", True, torch.ones(3), torch.tensor([1.0, 0.0])],
)
def test_ssim_bad_data_range_raises(dr):
    with pytest.raises(ValueError, match=r"`data_range`"):
        M.ssim(GOOD, GOOD, data_range=dr)


def test_empty_batch_raises():
    with pytest.raises(ValueError, match=r"`a`.*non-empty"):
        M.mse(torch.rand(0, 4), torch.rand(0, 4))


def test_fooling_success_rate_counts_moved_and_kept():
    from xaifool.metrics import fooling_success_rate

    rng = np.random.default_rng(0)
    sim, kept = rng.random(200), rng.random(200) > 0.3
    for tau in (0.0, 0.2, 0.5, 1.0, 1.5):
        expected = sum(1 for s, k in zip(sim, kept) if s < tau and k) / 200
        assert fooling_success_rate(sim, kept, tau) == pytest.approx(expected)
    # a sample whose label flipped is never counted, however far its explanation moved
    assert fooling_success_rate([0.0, 0.0], [False, False], 0.5) == 0.0
    assert fooling_success_rate(torch.tensor([float("nan"), 0.1]), torch.tensor([True, True]), 0.5) == 0.5
    with pytest.raises(ValueError, match="^similarity and label_kept"):
        fooling_success_rate([0.1, 0.2], [True], 0.5)
    with pytest.raises(ValueError, match="^tau"):
        fooling_success_rate([0.1], [True], "0.5")
