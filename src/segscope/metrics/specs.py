"""One table of every score segscope reports: its direction, where it is computed, and what it means.

The evaluators, the CLI tables, the trainer's checkpoint monitor, ``bench``'s leaderboard and paired tests
and both HTML reports read this table; none keeps a list of its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """One metric.

    Attributes
    ----------
    name : the key in results (``mean_iou``); ``val_<name>`` in training logs.
    higher_is_better : direction of improvement.
    per_image : scored image by image (so bench's paired tests can compare it).
    pooled : the test-set value comes from the pooled pixels / instances of all images (a confusion
        matrix, one COCO evaluation); otherwise it is the mean of the per-image values.
    binary_only : needs a binary (foreground / background) task.
    surface : a surface distance (:mod:`~segscope.metrics.surface`): the semantic evaluator reports it for
        3-D inputs, or when asked to (``Evaluator(surface=True)``); 2-D results do not carry it otherwise.
    tasks : the evaluators that produce it: ``"semantic"`` (semantic and binary methods) and/or
        ``"instance"``.
    headline : shown in the run summary and the CLI table.
    boards : the bench leaderboards that show it as a column, in table order: ``"binary"``,
        ``"multiclass"`` (semantic data) and ``"instance"``; the first column is the default primary metric.
    help : one line for tooltips and docs.
    """

    name: str
    higher_is_better: bool
    per_image: bool
    help: str
    binary_only: bool = False
    tasks: tuple[str, ...] = ("semantic",)
    headline: bool = True
    pooled: bool = False
    boards: tuple[str, ...] = ()
    surface: bool = False


B, M, I = "binary", "multiclass", "instance"
SEM, INS = ("semantic",), ("instance",)
# fmt: off
METRICS: tuple[MetricSpec, ...] = (
    # name, higher_is_better, per_image, help, ...
    MetricSpec("pixel_error", False, True, "fraction of wrongly labelled pixels (1 - pixel accuracy), "
               "mean over test images", binary_only=True, boards=(B,)),
    MetricSpec("rand_error", False, True, "adapted Rand error of the segments (ISBI 2012): the "
               "foreground's connected components, or the instances; mean over images", binary_only=True,
               tasks=SEM + INS, boards=(B, I)),
    MetricSpec("mean_iou", True, True, "intersection over union averaged over classes, from all "
               "test pixels", pooled=True, boards=(B, M)),
    MetricSpec("pixel_accuracy", True, True, "fraction of correctly labelled pixels, from all test pixels",
               pooled=True, boards=(M,)),
    MetricSpec("mean_class_accuracy", True, False, "per-class recall averaged over classes, from all test "
               "pixels", pooled=True, boards=(M,)),
    MetricSpec("fw_iou", True, False, "IoU averaged over classes weighted by their pixel "
               "frequency", pooled=True),
    MetricSpec("boundary_f1", True, True, "F-measure of class boundaries matched within 2 pixels, mean "
               "over test images", boards=(B, M)),
    MetricSpec("foreground_dice", True, True, "Dice (F1) of the foreground class, from all test pixels "
               "(voxels)", binary_only=True, pooled=True),
    MetricSpec("foreground_iou", True, True, "IoU (Jaccard) of the foreground class, from all test pixels "
               "(voxels)", binary_only=True, pooled=True),
    MetricSpec("hd95", False, True, "95th-percentile symmetric Hausdorff distance of the class surfaces, in "
               "the spacing's units (voxels by default); mean over classes, then images", surface=True),
    MetricSpec("surface_distance", False, True, "average symmetric surface distance (ASSD), in the "
               "spacing's units (voxels by default); mean over classes, then images", surface=True),
    MetricSpec("mask_ap", True, False, "COCO mask AP, IoU 0.50:0.95, pooled over all test images "
               "(pycocotools)", tasks=INS, pooled=True, boards=(I,)),
    MetricSpec("mask_ap50", True, False, "COCO mask AP at IoU 0.50", tasks=INS, pooled=True, boards=(I,)),
    MetricSpec("mask_ap75", True, False, "COCO mask AP at IoU 0.75", tasks=INS, pooled=True, boards=(I,)),
    MetricSpec("sbd", True, True, "symmetric best Dice of the instances (CVPPP), mean over "
               "images", tasks=INS, boards=(I,)),
    MetricSpec("abs_dic", False, True, "absolute difference in instance count |DiC| (CVPPP), mean "
               "over images", tasks=INS, boards=(I,)),
    MetricSpec("loss", False, False, "validation loss (training logs)", tasks=(), headline=False),
    MetricSpec("fit_seconds", False, False, "seconds spent in fit()", tasks=(), headline=False),
    MetricSpec("seconds_per_image", False, False, "inference seconds per test image", tasks=(),
               headline=False),
)
# fmt: on
_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> MetricSpec:
    """The spec of ``name`` (a ``val_`` prefix is dropped); ``KeyError`` naming the known ones."""
    key = name.removeprefix("val_")
    try:
        return _BY_NAME[key]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(_BY_NAME)}") from None


def higher_is_better(name: str) -> bool:
    """Direction of ``name``; for a metric outside the table (a custom ``evaluate_fn``'s), lower is better
    when its name says loss or error."""
    key = name.removeprefix("val_")
    if key in _BY_NAME:
        return _BY_NAME[key].higher_is_better
    return not any(word in key for word in ("loss", "error"))


def headline_metrics(task: str | None = None, *, binary: bool | None = None) -> list[str]:
    """Headline metric names for a task (``"semantic"``, ``"binary"``, ``"instance"``; ``None``: all),
    binary-only ones first on binary data, left out on multi-class data (``binary=False``)."""
    evaluator = "instance" if task == "instance" else "semantic" if task else None
    names = [
        m
        for m in METRICS
        if m.headline
        and (evaluator is None or evaluator in m.tasks)
        and not (m.binary_only and binary is False and evaluator != "instance")
    ]
    return [m.name for m in names]


def per_image_metrics(task: str | None = None) -> list[str]:
    """Metrics scored per image (bench's paired tests and ``--primary`` choose among these)."""
    evaluator = "instance" if task == "instance" else "semantic" if task else None
    return [m.name for m in METRICS if m.per_image and (evaluator is None or evaluator in m.tasks)]


def leaderboard_metrics(task: str, *, binary: bool, volume: bool = False) -> list[str]:
    """The columns of a bench leaderboard, the default primary metric first.

    Binary data: pixel error, Rand error, mean IoU, boundary F1 (ISBI order). Multi-class data: mean IoU,
    pixel accuracy, mean class accuracy, boundary F1. Instance methods: mask AP, AP50, AP75, SBD, |DiC|,
    Rand error. Volumes (``volume``): binary -- foreground Dice and IoU, HD95, mean surface distance, Rand
    error of the 3-D components, pixel error; multi-class -- the multi-class columns and the surface ones.
    """
    if volume and task != "instance":
        surface = [m.name for m in METRICS if m.surface]
        if binary:
            return ["foreground_dice", "foreground_iou", *surface, "rand_error", "pixel_error"]
        return [m.name for m in METRICS if M in m.boards] + surface
    board = I if task == "instance" else B if binary else M
    names = [m.name for m in METRICS if board in m.boards]
    if board == I:  # AP first: the instance table's primary metric
        names = [n for n in names if n != "rand_error"] + ["rand_error"]
    return names


def per_image_means(task: str) -> list[str]:
    """Metrics whose test-set value an evaluator of ``task`` computes as the mean over images."""
    evaluator = "instance" if task == "instance" else "semantic"
    return [m.name for m in METRICS if m.per_image and not m.pooled and evaluator in m.tasks]


def lower_is_better() -> list[str]:
    """Names of the metrics where lower is better."""
    return [m.name for m in METRICS if not m.higher_is_better]


def metric_help(name: str) -> str:
    spec = _BY_NAME.get(name.removeprefix("val_"))
    return spec.help if spec else name
