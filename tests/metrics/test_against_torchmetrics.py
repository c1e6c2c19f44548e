"""segscope's ConfusionMatrix against torchmetrics, an independent implementation of the same scores.

Conventions (checked by ``test_absent_class_conventions`` on a hand-made example):

* pixels whose target is ``ignore_index`` are dropped by both libraries, whatever their prediction;
* a class absent from both prediction and target: segscope reports ``nan`` per class, torchmetrics its
  ``zero_division`` value (0); both leave the class out of the macro means of IoU and F1 / Dice;
* mean class accuracy (macro recall): segscope averages over the classes present in the *target*;
  torchmetrics (``MulticlassAccuracy(average="macro")``) over the classes present in target *or*
  prediction, so a class that is only predicted counts there with recall 0. The comparison below
  therefore averages torchmetrics' per-class recall over the classes with target support;
* torchmetrics' ``MulticlassJaccardIndex(average="weighted")`` weighs by target support, which is
  the frequency-weighted IoU of Long et al.
"""

import numpy as np
import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from segscope.metrics import ConfusionMatrix

K, IGNORE, ABSENT, ONLY_PREDICTED = 6, 255, 4, 5


def _batches(seed, n=3, shape=(2, 24, 32)):
    """Random (pred, target) batches: class ``ABSENT`` in neither map (though predicted on ignored
    pixels, which must not count), class ``ONLY_PREDICTED`` only in the prediction, ~10 % ignored."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        target = torch.randint(0, K, shape, generator=g)
        target[(target == ABSENT) | (target == ONLY_PREDICTED)] = 0
        right = torch.rand(shape, generator=g) < 0.55
        pred = torch.where(right, target, torch.randint(0, K, shape, generator=g))
        pred[pred == ABSENT] = 1
        ignored = torch.rand(shape, generator=g) < 0.1
        target[ignored] = IGNORE
        pred[ignored & (torch.rand(shape, generator=g) < 0.5)] = ABSENT
        out.append((pred, target))
    return out


def _torchmetrics(batches, **kw):
    metrics = {
        "confmat": MulticlassConfusionMatrix(K, ignore_index=IGNORE),
        "iou": MulticlassJaccardIndex(K, average=None, ignore_index=IGNORE),
        "miou": MulticlassJaccardIndex(K, average="macro", ignore_index=IGNORE),
        "fwiou": MulticlassJaccardIndex(K, average="weighted", ignore_index=IGNORE),
        "dice": MulticlassF1Score(K, average=None, ignore_index=IGNORE),
        "mdice": MulticlassF1Score(K, average="macro", ignore_index=IGNORE),
        "pixel_acc": MulticlassAccuracy(K, average="micro", ignore_index=IGNORE),
        "recall": MulticlassAccuracy(K, average=None, ignore_index=IGNORE),
    }
    for pred, target in batches:
        for m in metrics.values():
            m.update(pred, target)
    return {k: m.compute().double().numpy() for k, m in metrics.items()}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("as_numpy", [False, True])
def test_scores_equal_torchmetrics_with_ignore_index_and_an_absent_class(seed, as_numpy):
    batches = _batches(seed)
    cm = ConfusionMatrix(K, ignore_index=IGNORE)
    for pred, target in batches:
        cm.update(*((pred.numpy(), target.numpy()) if as_numpy else (pred, target)))
    tm = _torchmetrics(batches)

    np.testing.assert_array_equal(cm.matrix, tm["confmat"])
    support = cm.matrix.sum(1) > 0
    present = support | (cm.matrix.sum(0) > 0)
    assert not present[ABSENT] and present[ONLY_PREDICTED] and not support[ONLY_PREDICTED]

    # per class: equal where the class occurs; segscope nan where torchmetrics gives zero_division=0
    np.testing.assert_allclose(cm.iou()[present], tm["iou"][present], rtol=1e-6)
    np.testing.assert_allclose(cm.dice()[present], tm["dice"][present], rtol=1e-6)
    assert np.isnan(cm.iou()[ABSENT]) and tm["iou"][ABSENT] == 0
    assert np.isnan(cm.dice()[ABSENT]) and tm["dice"][ABSENT] == 0
    assert cm.iou()[ONLY_PREDICTED] == tm["iou"][ONLY_PREDICTED] == 0

    # macro means: both leave out the class absent from both maps
    assert cm.mean_iou() == pytest.approx(float(tm["miou"]), rel=1e-6)
    assert np.nanmean(cm.dice()) == pytest.approx(float(tm["mdice"]), rel=1e-6)
    assert cm.frequency_weighted_iou() == pytest.approx(float(tm["fwiou"]), rel=1e-6)
    assert cm.pixel_accuracy() == pytest.approx(float(tm["pixel_acc"]), rel=1e-6)

    # recall: equal per class with target support; segscope's mean over those classes only
    np.testing.assert_allclose(cm.class_accuracy()[support], tm["recall"][support], rtol=1e-6)
    assert np.isnan(cm.class_accuracy()[~support]).all()
    assert cm.mean_class_accuracy() == pytest.approx(float(tm["recall"][support].mean()), rel=1e-6)


def test_absent_class_conventions():
    # 4 classes: 3 absent from both maps (only "predicted" on the ignored pixel), 2 only predicted
    target = torch.tensor([0, 0, 1, 1, 1, IGNORE, 0])
    pred = torch.tensor([0, 1, 1, 2, 1, 3, 0])
    cm = ConfusionMatrix(4, ignore_index=IGNORE).update(pred, target)
    # by hand: matrix rows = target; c0: TP 2, FN 1; c1: TP 2, FP 1, FN 1; c2: FP 1
    np.testing.assert_array_equal(cm.matrix, [[2, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(cm.iou(), [2 / 3, 2 / 4, 0, np.nan])
    tm_iou = MulticlassJaccardIndex(4, average=None, ignore_index=IGNORE)(pred, target)
    np.testing.assert_allclose(tm_iou.numpy(), [2 / 3, 2 / 4, 0, 0], rtol=1e-6)  # zero_division=0
    miou = (2 / 3 + 2 / 4 + 0) / 3  # class 3 left out by both
    assert cm.mean_iou() == pytest.approx(miou)
    assert MulticlassJaccardIndex(4, ignore_index=IGNORE)(pred, target).item() == pytest.approx(miou)
    # mean class accuracy: segscope over classes in the target (0, 1); torchmetrics also counts the
    # only-predicted class 2 with recall 0 (and leaves out class 3)
    assert cm.mean_class_accuracy() == pytest.approx((2 / 3 + 2 / 3) / 2)
    tm_macro = MulticlassAccuracy(4, average="macro", ignore_index=IGNORE)(pred, target).item()
    assert tm_macro == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
