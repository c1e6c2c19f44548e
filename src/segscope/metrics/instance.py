"""Instance-segmentation scores: COCO mask AP (through pycocotools) and the CVPPP leaf metrics."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from segscope.metrics.rand import _to_numpy


def instance_masks(instances: Any) -> np.ndarray:
    """Boolean masks ``(N, H, W)`` of one image's instances.

    ``instances`` is an integer label map ``(H, W)`` (0 = background, every other value one instance,
    taken in increasing label order) or already a stack ``(N, H, W)`` of masks.
    """
    a = _to_numpy(instances)
    if a.ndim == 3:
        return a.astype(bool, copy=False)
    if a.ndim != 2:
        raise ValueError(f"instances must be a (H, W) label map or an (N, H, W) mask stack, not {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"an instance label map must hold integers, got dtype {a.dtype}")
    labels = np.unique(a)
    labels = labels[labels != 0]
    return a[None] == labels[:, None, None]


def _is_single_image(items: Any) -> bool:
    """A 2-D array or tensor is one image's label map; anything else is a sequence of images."""
    return getattr(items, "ndim", None) == 2


def _sequence(items: Any, what: str) -> list[Any]:
    try:
        return list(items)
    except TypeError:
        raise ValueError(f"{what} must be a sequence with one entry per image") from None


def _encode(masks: np.ndarray) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    if not len(masks):
        return []
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))


def mask_ap(
    gt_instances: Any,
    pred_instances: Any,
    pred_scores: Any = None,
    *,
    max_detections: int = 100,
) -> dict[str, float]:
    """COCO mask average precision of class-agnostic instance predictions.

    Masks are RLE-encoded and scored by ``pycocotools.cocoeval.COCOeval`` (``iouType="segm"``) on COCO
    objects built in memory, with its printing silenced: ``ap`` is the mean over IoU thresholds
    0.50:0.05:0.95 of the 101-point interpolated precision, ``ap50`` and ``ap75`` the values at one
    threshold, all over every object size and up to ``max_detections`` predictions per image.

    Parameters
    ----------
    gt_instances : one image's label map ``(H, W)`` (0 = background, one value per instance), or a
        sequence with one entry per image, each a label map or a boolean stack ``(N, H, W)``.
    pred_instances : the predictions: for one image, its label map or mask stack (a stack may hold
        overlapping masks); for a sequence, one such entry per image in the same order.
    pred_scores : one confidence per predicted instance (stack order, or increasing label order for a
        label map), per image for a sequence; ``None`` gives every prediction score 1 (ties keep their
        order).
    max_detections : COCO's ``maxDets`` for AP (the highest scores per image are kept).

    Returns
    -------
    ``{"ap": ..., "ap50": ..., "ap75": ...}`` in ``[0, 1]``; ``nan`` when no image has a true instance.

    References
    ----------
    Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014, and the COCO detection evaluation
    (cocodataset.org/#detection-eval), as implemented by pycocotools.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if _is_single_image(gt_instances):  # one image: the predictions and scores are that image's
        gts, preds, scores = [gt_instances], [pred_instances], [pred_scores]
    else:
        gts, preds = _sequence(gt_instances, "gt_instances"), _sequence(pred_instances, "pred_instances")
        scores = [None] * len(preds) if pred_scores is None else _sequence(pred_scores, "pred_scores")
    if len(gts) != len(preds):
        raise ValueError(f"{len(gts)} ground-truth images but {len(preds)} predicted images")
    if len(scores) != len(preds):
        raise ValueError(f"pred_scores has {len(scores)} entries for {len(preds)} images")
    images, gt_anns, pred_anns = [], [], []
    for image_id, (gt, pred, score) in enumerate(zip(gts, preds, scores), start=1):
        gt_masks, pred_masks = instance_masks(gt), instance_masks(pred)
        if gt_masks.shape[1:] != pred_masks.shape[1:]:
            raise ValueError(
                f"image {image_id - 1}: ground truth is {gt_masks.shape[1:]}, "
                f"prediction {pred_masks.shape[1:]}"
            )
        if score is None:
            score = np.ones(len(pred_masks))
        score = np.asarray(_to_numpy(score), np.float64).ravel()
        if len(score) != len(pred_masks):
            raise ValueError(
                f"image {image_id - 1}: {len(pred_masks)} predicted instances but {len(score)} scores"
            )
        height, width = gt_masks.shape[1:]
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        for rle, mask in zip(_encode(gt_masks), gt_masks):
            gt_anns.append(_annotation(len(gt_anns) + 1, image_id, rle, mask))
        for rle, s in zip(_encode(pred_masks), score):
            pred_anns.append({"image_id": image_id, "category_id": 1, "segmentation": rle, "score": float(s)})
    if not gt_anns:
        return {"ap": float("nan"), "ap50": float("nan"), "ap75": float("nan")}
    if not pred_anns:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": images,
            "annotations": gt_anns,
            "categories": [{"id": 1, "name": "object"}],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(pred_anns)
        evaluation = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluation.params.maxDets = [1, 10, int(max_detections)]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50, ap75 = (float(v) if v >= 0 else float("nan") for v in evaluation.stats[:3])
    return {"ap": ap, "ap50": ap50, "ap75": ap75}


def _annotation(ann_id: int, image_id: int, rle: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "segmentation": rle,
        "area": float(mask.sum()),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }


def _instance_sizes(labels: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = _to_numpy(labels)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"{what} must be an integer label map, got dtype {a.dtype}")
    values, inverse = np.unique(a.reshape(-1), return_inverse=True)
    return values, inverse


def best_dice(labels_a: Any, labels_b: Any) -> float:
    """CVPPP ``BestDice(A, B)``: the mean over the instances ``a`` of ``A`` of the best Dice
    ``2|a & b| / (|a| + |b|)`` with any instance ``b`` of ``B`` (0 = background in both maps).

    0 when ``A`` or ``B`` has no instance, 1 when neither has one. Computed from one contingency table
    (``np.bincount``), not by looping over instance pairs.
    """
    a, b = _to_numpy(labels_a), _to_numpy(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    a_values, a_index = _instance_sizes(a, "labels_a")
    b_values, b_index = _instance_sizes(b, "labels_b")
    a_fg, b_fg = a_values != 0, b_values != 0
    if not a_fg.any() or not b_fg.any():
        return 1.0 if not a_fg.any() and not b_fg.any() else 0.0
    table = np.bincount(a_index * len(b_values) + b_index, minlength=len(a_values) * len(b_values))
    table = table.reshape(len(a_values), len(b_values))[np.ix_(a_fg, b_fg)].astype(np.float64)
    size_a = np.bincount(a_index, minlength=len(a_values))[a_fg]
    size_b = np.bincount(b_index, minlength=len(b_values))[b_fg]
    dice = 2 * table / (size_a[:, None] + size_b[None, :])
    return float(dice.max(1).mean())


def symmetric_best_dice(gt_labels: Any, pred_labels: Any) -> float:
    """Symmetric best Dice (SBD) of two instance label maps (0 = background):
    ``min(BestDice(gt, pred), BestDice(pred, gt))``, the CVPPP leaf-segmentation score.

    See :func:`best_dice` (two maps without any instance score 1: nothing to find, nothing found).

    References
    ----------
    Scharr et al., "Leaf segmentation in plant phenotyping: a collation study", Machine Vision and
    Applications 27, 2016 (SBD and DiC); Minervini et al., Pattern Recognition Letters 81, 2016 (CVPPP).
    """
    return min(best_dice(gt_labels, pred_labels), best_dice(pred_labels, gt_labels))


def abs_diff_in_count(gt_labels: Any, pred_labels: Any) -> int:
    """``|DiC|``: absolute difference between the numbers of predicted and true instances (distinct
    non-zero labels), the CVPPP leaf-counting error.

    References
    ----------
    Scharr et al., Machine Vision and Applications 27, 2016.
    """
    gt, pred = _to_numpy(gt_labels), _to_numpy(pred_labels)
    return abs(int(np.count_nonzero(np.unique(pred))) - int(np.count_nonzero(np.unique(gt))))
