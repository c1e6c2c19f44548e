"""Loss specs, class-weight routing, cost-matrix files, modules and class weighting schemes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segscope import losses as L
from segscope.errors import UserError
from tests.losses.helpers import random_case

W = torch.tensor([1.0, 4.0, 0.25])


def value(loss, logits, target) -> float:
    return loss(logits, target).item()


def test_losses_tuple_names_every_spec_term():
    assert L.LOSSES == (
        "ce", "dice", "gdice", "tversky", "focal", "lovasz", "boundary", "boundary_ce", "ohem", "cost",
        "triplet",
    )  # fmt: skip


def test_parse_spec_terms_coefficients_and_options():
    terms = L.parse_spec(" ce + 0.5*lovasz:per_image=true + tversky:alpha=0.3,beta=0.7 + ohem:min_kept=10000")
    assert [(t.coef, t.name, t.options) for t in terms] == [
        (1.0, "ce", {}),
        (0.5, "lovasz", {"per_image": True}),
        (1.0, "tversky", {"alpha": 0.3, "beta": 0.7}),
        (1.0, "ohem", {"min_kept": 10000}),
    ]
    assert L.parse_spec("focal:gamma=2+dice")[0].options == {"gamma": 2.0}


def test_ce_plus_dice_is_backward_compatible():
    logits, target = random_case()
    got = value(L.build_loss("ce+dice", ignore_index=255), logits, target)
    expected = L.cross_entropy(logits, target).item() + L.soft_dice_loss(logits, target).item()
    assert got == pytest.approx(expected, abs=1e-12)
    assert L.build_loss("ce+dice").spec == "ce+dice"


def test_coefficients_and_options_reach_the_functions():
    logits, target = random_case()
    got = value(L.build_loss("2*focal:gamma=1+0.5*lovasz+tversky:alpha=0.2,beta=0.8"), logits, target)
    expected = (
        2 * L.focal_loss(logits, target, gamma=1).item()
        + 0.5 * L.lovasz_softmax_loss(logits, target).item()
        + L.tversky_loss(logits, target, alpha=0.2, beta=0.8).item()
    )
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("spec", "fn"),
    [
        ("ce", lambda lo, t, w: L.cross_entropy(lo, t, weight=w)),
        ("focal", lambda lo, t, w: L.focal_loss(lo, t, weight=w)),
        ("ohem:min_kept=5", lambda lo, t, w: L.ohem_cross_entropy(lo, t, min_kept=5, weight=w)),
        ("boundary_ce", lambda lo, t, w: L.boundary_weighted_cross_entropy(lo, t, weight=w)),
    ],
)
def test_class_weights_reach_the_weighted_terms(spec, fn):
    logits, target = random_case()
    weighted = value(L.build_loss(spec, weight=W), logits, target)
    assert weighted == pytest.approx(fn(logits, target, W).item(), abs=1e-6)
    assert weighted != pytest.approx(value(L.build_loss(spec), logits, target), abs=1e-4)


@pytest.mark.parametrize("spec", ["dice", "gdice", "tversky", "lovasz", "boundary"])
def test_class_weights_do_not_change_unweighted_terms(spec):
    logits, target = random_case()
    assert value(L.build_loss(spec, weight=W), logits, target) == value(L.build_loss(spec), logits, target)


def test_ignore_index_reaches_every_term():
    logits, target = random_case(ignore=False)
    target[:, 0, :2] = 7
    for spec in L.LOSSES:
        loss = L.build_loss(spec, ignore_index=7, cost_matrix=np.ones((3, 3)) - np.eye(3))
        dropped = loss(logits, target)
        other = target.clone()
        other[target == 7] = 0
        assert dropped.item() != pytest.approx(loss(logits, other).item(), abs=1e-9), spec


def test_cost_matrix_from_file_or_keyword(tmp_path):
    logits, target = random_case()
    matrix = [[0, 1, 1], [5, 0, 1], [2, 2, 0]]
    expected = L.cost_sensitive_loss(logits, target, torch.tensor(matrix, dtype=torch.float64)).item()
    (tmp_path / "c.json").write_text(json.dumps(matrix))
    (tmp_path / "d.json").write_text(json.dumps({"matrix": matrix}))
    for spec in (f"cost:matrix={tmp_path / 'c.json'}", f"cost:matrix={tmp_path / 'd.json'}"):
        assert value(L.build_loss(spec), logits, target) == pytest.approx(expected, abs=1e-6)
    kw = L.build_loss("ce+cost", cost_matrix=np.array(matrix))
    ce = L.cross_entropy(logits, target).item()
    assert value(kw, logits, target) == pytest.approx(ce + expected, abs=1e-6)


@pytest.mark.parametrize(
    ("content", "match"),
    [("[[0, 1], [1", "cannot parse"), ("[[0, 1, 2], [1, 0, 2]]", "square"), ('{"m": 1}', "cost_matrix")],
)
def test_bad_cost_matrix_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=match) as err:
        L.build_loss(f"cost:matrix={path}")
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty"),
        ("ce+", "empty"),
        ("cee", "choose from ce, dice, gdice, tversky, focal, lovasz, boundary, boundary_ce, ohem, cost"),
        ("ce:gamma=2", "its options: label_smoothing"),
        ("dice:alpha=1", "its options: smooth"),
        ("boundary:w0=1", "its options: none"),
        ("focal:gamma=-1", "must be a number >= 0"),
        ("focal:gamma=abc", "must be a number >= 0"),
        ("focal:gamma", "needs a value"),
        ("focal:gamma=1,gamma=2", "twice"),
        ("0*ce", "coefficient"),
        ("-1*ce", "coefficient"),
        ("x*ce", "coefficient"),
        ("ohem:thresh=1.5", r"in \[0, 1\]"),
        ("ohem:keep=0", r"in \(0, 1\]"),
        ("ohem:min_kept=1e4", "an integer"),
        ("lovasz:per_image=maybe", "true or false"),
        ("lovasz:classes=some", "one of present, all"),
        ("boundary_ce:sigma=0", "> 0"),
        ("cost", "needs a cost matrix"),
        ("cost:matrix=/nonexistent/c.json", "file not found"),
        ("ce dice", "cannot parse"),
    ],
)
def test_invalid_specs_raise_one_line_user_errors(spec, match):
    with pytest.raises(UserError, match=match) as err:
        L.build_loss(spec)
    assert "\n" not in str(err.value)


def test_bad_cost_matrix_keyword():
    with pytest.raises(UserError, match="square"):
        L.build_loss("cost", cost_matrix=[[0, 1]])
    with pytest.raises(UserError, match="finite"):
        L.build_loss("cost", cost_matrix=[[0, float("nan")], [1, 0]])


def test_result_is_a_module_whose_terms_are_the_thin_modules():
    loss = L.build_loss("focal:gamma=2+dice", weight=W)
    assert isinstance(loss, torch.nn.Module)
    assert [type(m) for m in loss.terms] == [L.FocalLoss, L.DiceLoss]
    assert torch.equal(loss.terms[0].weight, W)


@pytest.mark.parametrize(
    ("module", "fn"),
    [
        (L.CrossEntropyLoss(weight=W), lambda lo, t: L.cross_entropy(lo, t, weight=W)),
        (L.DiceLoss(smooth=0.5), lambda lo, t: L.soft_dice_loss(lo, t, smooth=0.5)),
        (L.GeneralizedDiceLoss(), L.generalized_dice_loss),
        (L.TverskyLoss(alpha=0.4, beta=0.6), lambda lo, t: L.tversky_loss(lo, t, alpha=0.4, beta=0.6)),
        (L.FocalLoss(gamma=1.5, weight=W), lambda lo, t: L.focal_loss(lo, t, gamma=1.5, weight=W)),
        (L.LovaszSoftmaxLoss(per_image=True), lambda lo, t: L.lovasz_softmax_loss(lo, t, per_image=True)),
        (L.OHEMCrossEntropy(keep=0.3), lambda lo, t: L.ohem_cross_entropy(lo, t, keep=0.3)),
        (L.BoundaryLoss(classes=[1, 2]), lambda lo, t: L.boundary_loss(lo, t, classes=[1, 2])),
        (L.BoundaryWeightedCrossEntropy(w0=3), lambda lo, t: L.boundary_weighted_cross_entropy(lo, t, w0=3)),
        (L.CostSensitiveLoss(1 - torch.eye(3)), lambda lo, t: L.cost_sensitive_loss(lo, t, 1 - torch.eye(3))),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, torch.nn.Module) else "",
)
def test_modules_call_their_function(module, fn):
    logits, target = random_case()
    assert module(logits, target).item() == pytest.approx(fn(logits, target).item(), abs=1e-6)
    assert type(module).__name__ in repr(module)


# --- class weighting schemes ---------------------------------------------------------------------


def test_class_weights_by_hand():
    counts = np.array([60, 30, 10, 0])
    f = np.array([0.6, 0.3, 0.1])
    inv = 1 / f
    np.testing.assert_allclose(L.class_weights(counts, "inverse"), [*(inv / inv.mean()), 0], rtol=1e-6)
    np.testing.assert_allclose(L.class_weights(counts, "median_freq"), [0.5, 1, 3, 0], rtol=1e-6)
    np.testing.assert_allclose(L.class_weights(counts, "enet"), [*(1 / np.log(1.02 + f)), 0], rtol=1e-6)


def test_class_weights_errors():
    with pytest.raises(UserError, match="choose from inverse, median_freq, enet"):
        L.class_weights(np.array([1, 2]), "sqrt")
    with pytest.raises(UserError, match="at least one pixel"):
        L.class_weights(np.array([0, 0]), "inverse")
