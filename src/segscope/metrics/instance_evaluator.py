"""The metric suite of instance methods: dataset-wide COCO mask AP plus per-image CVPPP scores.

:class:`InstanceEvaluator` is the instance counterpart of :class:`~segscope.metrics.Evaluator`: ``add``
scores one image's :class:`~segscope.types.Instances` against the truth and keeps what the dataset-wide
AP needs (RLE-encoded masks, not the masks themselves), ``result`` summarises.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from segscope.metrics.instance import _encode, best_dice
from segscope.metrics.rand import adapted_rand_error
from segscope.types import Instances

PER_IMAGE_MEANS = ("sbd", "abs_dic", "rand_error")
"""Per-image scores that :meth:`InstanceEvaluator.result` averages over images."""


def _as_instances(x: Any, what: str) -> Instances:
    if isinstance(x, Instances):
        return x
    a = np.asarray(x)
    if a.ndim == 2:  # an instance-id map, 0 = background
        return Instances.from_label_map(a)
    raise ValueError(
        f"{what} must be Instances or an (H, W) instance-id map, got {type(x).__name__} {a.shape}"
    )


def _nonempty(instances: Instances) -> Instances:
    """The instances whose mask covers at least one pixel (an empty mask is no object)."""
    keep = np.array([m.any() for m in instances.masks], bool)
    return instances if keep.all() else instances.select(keep)


class InstanceEvaluator:
    """Score instance predictions image by image and over the whole dataset.

    Parameters
    ----------
    max_detections : COCO's ``maxDets`` for AP (the highest-scoring predictions per image are kept).

    Notes
    -----
    :meth:`result` holds

    * ``mask_ap``, ``mask_ap50``, ``mask_ap75``: COCO mask average precision (``pycocotools``
      ``COCOeval``, ``iouType="segm"``, 101-point interpolated precision; AP averaged over IoU
      0.50:0.05:0.95) of **all images pooled in one evaluation** -- every prediction of every image is
      ranked by score together, as COCO does, which is not the mean of per-image APs. Class-agnostic
      (every instance category 1) unless the instance labels of truth and predictions take more than
      one value, then per class and averaged over the classes, as COCO does. ``nan`` when no image has
      a true instance, 0 when nothing is predicted.
    * ``sbd``: mean over images of the symmetric best Dice, ``min(BestDice(gt, pred),
      BestDice(pred, gt))`` (CVPPP; 1 for an image where neither has an object).
    * ``abs_dic``: mean over images of ``|#pred - #true|`` (CVPPP |DiC|; instances with an empty mask
      are not counted).
    * ``rand_error``: mean over images (``nan`` images left out) of the adapted Rand error
      (:func:`~segscope.metrics.adapted_rand_error`) of the instance-id maps, with the SNEMI3D / ISBI
      convention of that function: true background pixels (id 0) are left out, so the score judges how
      the true objects are split and merged, a predicted background pixel inside a true object counts as
      one more (shared) predicted segment, and false objects on true background are not counted here
      (AP, SBD and |DiC| see them). ``nan`` for an image without true objects.
    * ``num_images`` and ``per_image``: the list of every image's dict from :meth:`add` (``name``,
      ``sbd``, ``abs_dic``, ``rand_error``, ``num_pred``, ``num_true``).

    Overlapping predicted masks are kept as they are for AP; SBD and the Rand error use the
    instance-id map :meth:`Instances.to_label_map` paints (the higher score wins an overlap).

    References
    ----------
    Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014 (and the COCO detection
    evaluation, cocodataset.org/#detection-eval). Scharr et al., "Leaf segmentation in plant
    phenotyping: a collation study", Machine Vision and Applications 27, 2016 (SBD, |DiC|).
    Arganda-Carreras et al., Front. Neuroanat. 9:142, 2015 (adapted Rand error).
    """

    def __init__(self, *, max_detections: int = 100) -> None:
        if int(max_detections) < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        self.max_detections = int(max_detections)
        self.per_image: list[dict[str, Any]] = []
        # what the pooled COCO evaluation needs, per image: (shape, gt RLEs, gt masks' areas, gt labels,
        # pred RLEs, pred scores, pred labels)
        self._coco: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.per_image)

    def add(
        self, pred: Instances | np.ndarray, target: Instances | np.ndarray, name: str | None = None
    ) -> dict[str, Any]:
        """Score one image: ``pred`` and ``target`` are :class:`Instances` (or ``(H, W)`` instance-id
        maps, 0 = background) of equal spatial shape. Returns the image's dict (see the class notes)."""
        pred, target = _nonempty(_as_instances(pred, "pred")), _nonempty(_as_instances(target, "target"))
        if pred.spatial_shape != target.spatial_shape:
            raise ValueError(
                f"prediction shape {pred.spatial_shape} differs from target shape {target.spatial_shape}"
            )
        if len(target.spatial_shape) != 2:
            raise ValueError(f"InstanceEvaluator scores 2-D images, got spatial shape {target.spatial_shape}")
        pred_map, true_map = pred.to_label_map(), target.to_label_map()
        sbd = min(best_dice(true_map, pred_map), best_dice(pred_map, true_map))
        rand = adapted_rand_error(true_map, pred_map, ignore_labels=(0,))[0] if len(target) else float("nan")
        row: dict[str, Any] = {
            "name": str(len(self.per_image)) if name is None else str(name),
            "sbd": float(sbd),
            "abs_dic": abs(len(pred) - len(target)),
            "rand_error": float(rand),
            "num_pred": len(pred),
            "num_true": len(target),
        }
        self._coco.append(
            {
                "shape": target.spatial_shape,
                "gt": _encode(target.masks),
                "gt_area": [int(m.sum()) for m in target.masks],
                "gt_labels": target.labels.tolist(),
                "pred": _encode(pred.masks),
                "scores": pred.scores.astype(np.float64).tolist(),
                "pred_labels": pred.labels.tolist(),
            }
        )
        self.per_image.append(row)
        return row

    # -- summary ----------------------------------------------------------------------------------
    def mask_ap(self) -> dict[str, float]:
        """``{"mask_ap", "mask_ap50", "mask_ap75"}`` of every image added so far, pooled (see the notes)."""
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        labels = {v for item in self._coco for v in item["gt_labels"] + item["pred_labels"]}
        agnostic = len(labels) <= 1
        images, gt_anns, pred_anns = [], [], []
        for image_id, item in enumerate(self._coco, start=1):
            h, w = item["shape"]
            images.append({"id": image_id, "height": int(h), "width": int(w)})
            for rle, area, label in zip(item["gt"], item["gt_area"], item["gt_labels"]):
                gt_anns.append(
                    {
                        "id": len(gt_anns) + 1,
                        "image_id": image_id,
                        "category_id": 1 if agnostic else int(label),
                        "segmentation": rle,
                        "area": float(area),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "iscrowd": 0,
                    }
                )
            for rle, score, label in zip(item["pred"], item["scores"], item["pred_labels"]):
                pred_anns.append(
                    {
                        "image_id": image_id,
                        "category_id": 1 if agnostic else int(label),
                        "segmentation": rle,
                        "score": float(score),
                    }
                )
        nan = float("nan")
        if not gt_anns:
            return {"mask_ap": nan, "mask_ap50": nan, "mask_ap75": nan}
        if not pred_anns:
            return {"mask_ap": 0.0, "mask_ap50": 0.0, "mask_ap75": 0.0}
        categories = [1] if agnostic else sorted(labels)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = {
                "images": images,
                "annotations": gt_anns,
                "categories": [{"id": int(c), "name": str(c)} for c in categories],
            }
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(pred_anns)
            evaluation = COCOeval(coco_gt, coco_dt, iouType="segm")
            evaluation.params.maxDets = [1, 10, self.max_detections]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        ap, ap50, ap75 = (float(v) if v >= 0 else nan for v in evaluation.stats[:3])
        return {"mask_ap": ap, "mask_ap50": ap50, "mask_ap75": ap75}

    def result(self) -> dict[str, Any]:
        """The summary described in the class notes (plain Python values, ready for JSON)."""
        out: dict[str, Any] = dict(self.mask_ap())
        for key in PER_IMAGE_MEANS:
            values = np.array([row[key] for row in self.per_image], np.float64)
            values = values[~np.isnan(values)]
            out[key] = float(values.mean()) if values.size else float("nan")
        out["num_images"] = len(self.per_image)
        out["per_image"] = [dict(row) for row in self.per_image]
        return out
