"""Fooling objectives (xaifool.attacks.objectives) on hand-made heatmaps, and the shared result shape."""
import pytest
import torch

from xaifool import metrics as M
from xaifool.attacks import input as A
from xaifool.attacks.objectives import OBJECTIVES, Objective, default_k, get_objective, region_mask
from xaifool.attacks.result import SIMILARITY_METRICS, BeforeAfter, similarity


def point_maps(points, hw=(5, 5)):
    """(B, H, W) maps with all mass (1) on one pixel each."""
    h = torch.zeros(len(points), *hw)
    for i, (r, c) in enumerate(points):
        h[i, r, c] = 1.0
    return h


# ----------------------------------------------------------------------------- registry

def test_registry_entries_and_names():
    assert {"topk", "center", "region", "location", "target", "swap"} <= set(OBJECTIVES)
    for name, o in OBJECTIVES.items():
        assert isinstance(o, Objective) and o.name == name and o.description
        assert callable(o.loss) and callable(o.reference)
    assert OBJECTIVES["topk"].options == ("k",)
    assert OBJECTIVES["center"].options == ()
    assert OBJECTIVES["region"].options == OBJECTIVES["location"].options == ("region",)
    assert OBJECTIVES["target"].options == ("target", "gamma")
    assert [n for n, o in OBJECTIVES.items() if o.needs_logits] == ["target"]
    assert not OBJECTIVES["topk"].targeted and not OBJECTIVES["center"].targeted
    assert all(OBJECTIVES[n].targeted for n in ("region", "location", "target", "swap"))


def test_registry_names_match_the_input_attacks():
    assert A.ATTACKS == ("random",) + tuple(n for n in OBJECTIVES if n in A.GHORBANI_KINDS + A.DOMBROWSKI_KINDS)
    assert set(A.ATTACKS) == {"random"} | set(OBJECTIVES) - {"swap"}
    assert A.GHORBANI_KINDS == ("topk", "center", "region", "location") and A.DOMBROWSKI_KINDS == ("target",)


@pytest.mark.parametrize("bad", ["fgsm", None, 3])
def test_get_objective_names_the_argument_and_the_accepted_values(bad):
    with pytest.raises(ValueError, match="^attack must be one of") as info:
        get_objective(bad, "attack")
    assert all(repr(n) in str(info.value) for n in OBJECTIVES)
    assert get_objective("topk") is OBJECTIVES["topk"]


# ----------------------------------------------------------------------------- values by hand

def test_topk_is_the_mass_left_on_the_original_topk_pixels():
    o = OBJECTIVES["topk"]
    h0 = torch.tensor([[[0.5, 0.3], [0.2, 0.0]]])  # top-2: (0, 0), (0, 1)
    ref = o.reference(h0, None, k=2)
    assert torch.equal(ref["mask"], torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    assert torch.allclose(o.loss(h0, None, ref), torch.tensor([0.8]))
    h = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]])
    assert torch.allclose(o.loss(h, None, ref), torch.tensor([0.3]))
    assert o.loss(point_maps([(1, 1)], (2, 2)), None, ref).item() == 0  # all mass moved off: fully fooled
    # default k
    assert o.reference(torch.rand(1, 32, 32), None)["mask"].sum() == default_k((32, 32)) == 20


def test_center_loss_is_minus_the_shift_of_the_centre_of_mass():
    o = OBJECTIVES["center"]
    h0 = point_maps([(0, 0), (2, 2)])
    ref = o.reference(h0, None)
    assert torch.equal(ref["com"], torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
    h = point_maps([(3, 4), (2, 2)])
    assert torch.allclose(o.loss(h, None, ref), torch.tensor([-5.0, 0.0]))
    assert torch.allclose(o.loss(h, None, ref), -M.center_of_mass_distance(h0, h))


@pytest.mark.parametrize("name", ["region", "location"])
def test_region_loss_is_minus_the_mass_inside_the_mask(name):
    o = OBJECTIVES[name]
    h = torch.full((2, 4, 4), 1 / 16)
    h[1] = 0
    h[1, 0, 0], h[1, 3, 3] = 0.25, 0.75
    mask = region_mask((4, 4), "corner", width=2)
    ref = o.reference(h, None, region=mask)
    assert torch.allclose(o.loss(h, None, ref), torch.tensor([-0.25, -0.25]))
    per_image = torch.stack([mask, 1 - mask])  # (B, H, W) masks
    assert torch.allclose(o.loss(h, None, o.reference(h, None, region=per_image)), torch.tensor([-0.25, -0.75]))


def test_target_is_zero_at_the_target_and_positive_elsewhere():
    o = OBJECTIVES["target"]
    target = torch.rand(2, 4, 4)
    target = target / target.sum((1, 2), keepdim=True)
    logits0 = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    ref = o.reference(torch.rand(2, 4, 4), logits0, target=target, gamma=2.0)
    assert torch.equal(o.loss(target, logits0, ref), torch.zeros(2))
    h = target.clone()
    h[0, 0, 0] += 0.1
    logits = logits0 + torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    # d‖h − h_t‖² = 16 · 0.01, γ‖g − g0‖²/K = 2 · 9 / 3
    assert torch.allclose(o.loss(h, logits, ref), torch.tensor([16 * 0.01 + 6.0, 0.0]))
    # γ = 0: the logits are not needed
    ref0 = o.reference(h, None, target=target)
    assert torch.allclose(o.loss(h, None, ref0), torch.tensor([0.16, 0.0]))
    with pytest.raises(ValueError, match="^logits0"):
        o.reference(h, None, target=target, gamma=1.0)
    with pytest.raises(ValueError, match="^gamma"):
        o.reference(h, logits0, target=target, gamma=-1.0)


def test_swap_pulls_each_class_to_the_other_classes_original_map():
    o = OBJECTIVES["swap"]
    ha, hb = point_maps([(0, 0), (1, 1)], (3, 3)), point_maps([(2, 2), (0, 2)], (3, 3))
    h0 = torch.cat([ha, hb])  # rows 0..1 explain class a, rows 2..3 class b, of the same two images
    ref = o.reference(h0, None)
    assert torch.equal(ref["target"], torch.cat([hb, ha]))
    assert torch.equal(o.loss(torch.cat([hb, ha]), None, ref), torch.zeros(4))  # swapped: fully fooled
    # unchanged maps: d · (1 + 1) per row (one pixel lost, one missing)
    assert torch.equal(o.loss(h0, None, ref), torch.full((4,), 9 * 2.0))
    # an explicit partner
    ref = o.reference(h0, None, partner=torch.tensor([1, 0, 3, 2]))
    assert torch.equal(ref["target"], h0[[1, 0, 3, 2]])
    with pytest.raises(ValueError, match="^partner"):
        o.reference(h0[:3], None)
    with pytest.raises(ValueError, match="^partner"):
        o.reference(h0, None, partner=torch.tensor([0, 1, 2, 4]))


def test_objectives_reproduce_the_input_attacks_objective():
    """The attacks' row 0 of ``objective`` is each objective's loss at the original maps."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.rand(2, 3, 12, 12)
    res = A.ghorbani_attack(net, x, "gradient", "topk", epsilon=0.05, n_iter=1, k=7, progress=False)
    ref = OBJECTIVES["topk"].reference(res.heatmap, res.logits, k=7)
    assert torch.equal(res.objective[0], OBJECTIVES["topk"].loss(res.heatmap, res.logits, ref))


# ----------------------------------------------------------------------------- bad references

def test_reference_arguments_are_checked():
    h0 = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="^k must"):
        OBJECTIVES["topk"].reference(h0, None, k=17)
    with pytest.raises(ValueError, match="^region must"):
        OBJECTIVES["region"].reference(h0, None, region=torch.ones(3, 3))
    with pytest.raises(ValueError, match="^target must"):
        OBJECTIVES["target"].reference(h0, None, target=torch.ones(3, 4, 4))
    with pytest.raises(ValueError, match="^h0 must"):
        OBJECTIVES["center"].reference(h0[0], None)


# ----------------------------------------------------------------------------- region masks

def test_region_masks():
    frame = region_mask((8, 10), "frame", width=2)
    assert frame.shape == (8, 10) and frame.sum() == 8 * 10 - 4 * 6
    assert frame[0].all() and frame[:, -1].all() and frame[2:6, 2:8].sum() == 0
    corner = region_mask((8, 10), "corner", width=3)
    assert corner.sum() == 9 and corner[:3, :3].all()
    assert region_mask((32, 32)).sum() == 32 * 32 - 24 * 24  # default width: an eighth of the side
    for kwargs, arg in [({"kind": "ring"}, "kind"), ({"width": 0}, "width"), ({"width": 5}, "width"),
                        ({"width": 2.0}, "width")]:
        with pytest.raises(ValueError, match=f"^{arg} must"):
            region_mask((8, 10), **kwargs)
    with pytest.raises(ValueError, match="^hw must"):
        region_mask((0, 3))


# ----------------------------------------------------------------------------- result shape

def test_similarity_is_the_books_metric_set():
    a, b = torch.rand(3, 12, 12), torch.rand(3, 12, 12)
    sim = similarity(a, b, 10)
    assert tuple(sim) == SIMILARITY_METRICS
    assert torch.equal(sim["topk"], M.topk_intersection(a, b, 10))
    assert torch.equal(sim["ssim"], M.ssim(a, b)) and torch.equal(sim["com_distance"], M.center_of_mass_distance(a, b))
    assert torch.allclose(similarity(a, a, 10)["topk"], torch.ones(3))


def test_before_after_properties_and_round_trip():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    r = BeforeAfter(label=torch.tensor([0, 1]), heatmap=torch.rand(2, 12, 12), heatmap_adv=torch.rand(2, 12, 12),
                    logits=logits, logits_adv=logits.flip(1), method="gradient", settings={"k": 5})
    assert len(r) == 2
    assert torch.equal(r.label_kept, torch.tensor([False, False]))
    assert torch.allclose(r.confidence, torch.tensor([2.0, 1.0]).sigmoid())
    assert torch.allclose(r.confidence_adv, torch.tensor([-2.0, -1.0]).sigmoid())
    assert torch.equal(r.similarity()["topk"], M.topk_intersection(r.heatmap, r.heatmap_adv, 5))
    back = BeforeAfter.from_dict(r.to_dict())
    assert torch.equal(back.heatmap, r.heatmap) and back.settings == r.settings and back.method == "gradient"


def test_attack_curves_palette_covers_every_objective():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from xaifool import plot

    names = ["random", *OBJECTIVES]
    frame = pd.DataFrame([{"method": "gradient", "attack": a, "eps255": e, "topk": 0.5, "spearman": 0.5}
                          for a in names for e in (1, 2)])
    fig = plot.attack_curves(frame)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    colors = {lab: matplotlib.colors.to_hex(h[0].get_color()) for h, lab in zip(handles, labels)}
    plt.close(fig)
    assert set(colors) == set(names) and len(set(colors.values())) == len(names)
