"""Tests for :func:`xaifool.training.fit`, the one training loop of the package."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from xaifool.training import OPTIMIZERS, fit


def _blobs(n: int = 64, seed: int = 0):
    """Two linearly separable Gaussian blobs in 2-D, labels 0/1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.5 + (y.float() * 2 - 1).unsqueeze(1) * torch.tensor([2.0, 1.0])
    return x, y


def _ce(model, batch):
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean()}


def _shuffled(x, y, n_batches=4):
    return lambda epoch: [(x[i], y[i]) for i in torch.randperm(len(x)).chunk(n_batches)]


def _mlp(seed=0, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(2, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.ReLU(), nn.Linear(8, 2)]
    return nn.Sequential(*layers)


def test_loss_decreases_on_a_separable_problem_and_history_has_one_entry_per_epoch():
    x, y = _blobs()
    model = _mlp()
    history = fit(model, _shuffled(x, y), _ce, epochs=30, lr=0.05, seed=0, progress=False)
    assert set(history) == {"loss", "accuracy"}
    assert len(history["loss"]) == len(history["accuracy"]) == 30
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["accuracy"][-1] == 1.0
    with torch.no_grad():
        assert (model(x).argmax(1) == y).all()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_list_of_batches_is_reused_every_epoch(optimizer):
    x, y = _blobs()
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]
    seen = []

    def loss_fn(model, batch):
        seen.append(len(batch[0]))
        return F.cross_entropy(model(batch[0]), batch[1])

    history = fit(_mlp(), batches, loss_fn, epochs=5, lr=0.1, optimizer=optimizer, progress=False)
    assert seen == [32, 32] * 5 and list(history) == ["loss"] and len(history["loss"]) == 5
    assert history["loss"][-1] < history["loss"][0]


def test_callable_batches_get_the_epoch_number_and_metrics_are_recorded():
    x, y = _blobs()
    epochs = []

    def batches(epoch):
        epochs.append(epoch)
        return [(x, y)]

    def metrics(model, batch):
        assert not torch.is_grad_enabled()
        return {"mean_logit": model(batch[0]).mean()}

    h = fit(_mlp(), batches, _ce, epochs=3, lr=0.01, metrics=metrics, progress=False)
    assert epochs == [0, 1, 2]
    assert set(h) == {"loss", "accuracy", "mean_logit"} and all(len(v) == 3 for v in h.values())
    assert all(isinstance(v, float) for vs in h.values() for v in vs)


def test_the_same_seed_gives_the_same_weights():
    x, y = _blobs()
    states = []
    for _ in range(2):
        model = _mlp(seed=1)
        fit(model, _shuffled(x, y), _ce, epochs=4, lr=0.05, weight_decay=1e-3, seed=7, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = _mlp(seed=1)
    fit(other, _shuffled(x, y), _ce, epochs=4, lr=0.05, weight_decay=1e-3, seed=8, progress=False)
    assert not torch.equal(other[0].weight, states[0]["0.weight"])  # another shuffle, other weights


def test_only_the_given_params_are_trained():
    x, y = _blobs()
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, [(x, y)], _ce, epochs=5, lr=0.1, weight_decay=0.1, params=model[2].parameters(), progress=False)
    assert torch.equal(model[0].weight, before["0.weight"]) and torch.equal(model[0].bias, before["0.bias"])
    assert not torch.equal(model[2].weight, before["2.weight"])


@pytest.mark.parametrize("start_in_train_mode", [True, False])
def test_eval_mode_is_kept_unless_train_mode_is_asked(start_in_train_mode):
    x, y = _blobs()
    model = _mlp(bn=True).train(start_in_train_mode)
    bn = model[1]
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    modes = []
    model.register_forward_pre_hook(lambda m, inp: modes.append(m.training))
    fit(model, [(x, y)], _ce, epochs=3, lr=0.1, progress=False)
    assert modes and not any(modes)  # trained in eval mode
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var) and int(bn.num_batches_tracked) == 0
    assert all(m.training == start_in_train_mode for m in model.modules())  # mode restored

    modes.clear()
    fit(model, [(x, y)], _ce, epochs=3, lr=0.1, train_mode=True, progress=False)
    assert modes and all(modes)
    assert not torch.equal(bn.running_mean, mean) and int(bn.num_batches_tracked) == 3
    assert all(m.training == start_in_train_mode for m in model.modules())


def test_each_module_gets_its_own_mode_back_even_after_an_error():
    x, y = _blobs()
    model = _mlp(bn=True).train()
    model[1].eval()  # a frozen BatchNorm inside a model in train mode

    def boom(model, batch):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit(model, [(x, y)], boom, epochs=1, lr=0.1, progress=False)
    fit(model, [(x, y)], _ce, epochs=1, lr=0.1, progress=False)
    assert model.training and model[0].training and not model[1].training


def test_progress_bar_shows_loss_and_accuracy(capsys):
    x, y = _blobs()
    fit(_mlp(), [(x, y)], _ce, epochs=2, lr=0.1, progress=True, desc="tiny")
    err = capsys.readouterr().err
    assert "tiny" in err and "loss=" in err and "accuracy=" in err
    fit(_mlp(), [(x, y)], _ce, epochs=2, lr=0.1, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs, arg", [
    (dict(epochs=0), "epochs"), (dict(epochs=1.5), "epochs"), (dict(epochs=True), "epochs"),
    (dict(epochs="3"), "epochs"),
    (dict(lr=0.0), "lr"), (dict(lr=-1e-3), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr=float("inf")), "lr"),
    (dict(weight_decay=-0.1), "weight_decay"), (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(optimizer="adamw"), "optimizer"), (dict(optimizer=None), "optimizer"),
    (dict(params=[]), "params"), (dict(params=[torch.zeros(2)]), "params"), (dict(params=3), "params"),
    (dict(metrics="accuracy"), "metrics"), (dict(train_mode="yes"), "train_mode"),
    (dict(batches=iter([1, 2])), "batches"), (dict(batches=3), "batches"), (dict(batches=[]), "batches"),
    (dict(loss_fn="cross_entropy"), "loss_fn"), (dict(model=lambda x: x), "model"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, arg):
    x, y = _blobs()
    call = dict(model=_mlp(), batches=[(x, y)], loss_fn=_ce, epochs=2, lr=0.1, progress=False)
    call.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{arg}\b") as err:
        fit(**call)
    if arg == "optimizer":
        assert all(name in str(err.value) for name in OPTIMIZERS)  # lists what it accepts


def test_a_non_scalar_loss_is_rejected():
    x, y = _blobs()
    with pytest.raises(ValueError, match="^loss_fn must return a scalar"):
        fit(_mlp(), [(x, y)], lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"), epochs=1, lr=0.1,
            progress=False)


def test_the_fine_curve_averages_windows_of_steps_and_changes_nothing_else():
    x, y = _blobs()
    plain = fit(_mlp(), _shuffled(x, y), _ce, epochs=3, lr=0.05, seed=0, progress=False)
    m = _mlp()
    fine = fit(m, _shuffled(x, y), _ce, epochs=3, lr=0.05, seed=0, progress=False, log_every=2)
    steps = fine.pop("steps")
    assert fine == plain  # the epoch means are the same with or without the fine curve
    # 4 batches per epoch, 12 steps: windows of 2 end at steps 2, 4, ..., 12
    assert steps["step"] == [2, 4, 6, 8, 10, 12]
    # each epoch's mean loss is the mean of its two windows
    for e in range(3):
        assert steps["loss"][2 * e] + steps["loss"][2 * e + 1] == pytest.approx(2 * plain["loss"][e], rel=1e-6)
    assert len(steps["accuracy"]) == 6


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_log_every_must_be_a_positive_int(bad):
    x, y = _blobs()
    with pytest.raises(ValueError, match="log_every"):
        fit(_mlp(), _shuffled(x, y), _ce, epochs=1, lr=0.05, progress=False, log_every=bad)


def test_the_fine_curve_ends_with_a_shorter_window():
    x, y = _blobs()
    fine = fit(_mlp(), _shuffled(x, y), _ce, epochs=2, lr=0.05, seed=0, progress=False, log_every=3)
    steps = fine["steps"]
    assert steps["step"] == [3, 6, 8]  # 8 steps: two full windows of 3, then one of 2
    total = 3 * steps["loss"][0] + 3 * steps["loss"][1] + 2 * steps["loss"][2]
    assert total == pytest.approx(4 * (fine["loss"][0] + fine["loss"][1]), rel=1e-6)
