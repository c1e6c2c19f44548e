"""The Segmenter wrapper shared by classical methods: tuning on the training split, polarity learning for
binary methods, pre-/post-processing chains and process-pool prediction.

A classical method is one function (image in, mask or label map out) plus a thin subclass naming its
tunable parameters. ``fit`` searches those parameters (full grid, or a random sample of it when larger
than ``max_trials``) on a few training images by mean IoU (:class:`segscope.metrics.ConfusionMatrix`)
within ``time_budget_s``, so classical and deep methods are compared on the same footing. Methods that
learn something from labels (a colour model, a classifier) do so in :meth:`ClassicalSegmenter.learn`
on training images disjoint from the ones used to score the candidates.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from segscope.classical.morphology import POSTPROCESSORS, postprocess
from segscope.classical.preprocess import PREPROCESSORS, parse_steps, preprocess, to_grey
from segscope.errors import UserError
from segscope.segmenter import Segmenter

if TYPE_CHECKING:
    from segscope.data.dataset import SegmentationDataset
    from segscope.prompts import Prompt
    from segscope.run_config import RunConfig

__all__ = ["BinarySegmenter", "ClassicalSegmenter", "SemanticSegmenter", "check_prompt_kinds", "to_grey"]

COMMON_OPTIONS = (
    "preprocess",
    "postprocess",
    "tune_images",
    "learn_images",
    "max_trials",
    "seed",
    "time_budget_s",
)
_SCORE_IGNORE = 255  # ignore value of the binary (foreground vs rest) confusion matrix used for tuning


def _predict_with(segmenter: Segmenter, image: np.ndarray) -> np.ndarray:
    """Top-level (spawn-safe) worker: one prediction."""
    return segmenter.predict(image)


_KIND_WORDS = {"box": ("box", "a box"), "points": ("point", "points")}


def check_prompt_kinds(name: str, accepted: tuple[str, ...], prompt: Prompt | None) -> None:
    """A one-line :class:`UserError` when ``prompt`` sets a part (box, points) that method ``name``,
    accepting the kinds ``accepted``, cannot use ("otsu takes no prompt")."""
    if not prompt:
        return
    refused = sorted(prompt.kinds() - set(accepted))
    if not refused:
        return
    if not accepted:
        raise UserError(f"{name} takes no prompt")
    takes = " and ".join(_KIND_WORDS.get(k, (k, k))[0] for k in accepted)
    raise UserError(f"{name} takes {takes} prompts, not {' or '.join(_KIND_WORDS[k][1] for k in refused)}")


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core: no nested thread pools


def evenly_spaced(n_total: int, n: int, exclude: set[int] = frozenset()) -> list[int]:
    """Up to ``n`` indices of ``range(n_total)`` (minus ``exclude``), spread evenly."""
    pool = [i for i in range(n_total) if i not in exclude]
    if n >= len(pool):
        return pool
    return [pool[i] for i in np.linspace(0, len(pool) - 1, n).round().astype(int)]


class ClassicalSegmenter(Segmenter):
    """Base of every classical method: tuning loop, persistence and process-pool prediction.

    Subclasses set ``name``, ``param_grid`` (tunable parameter -> candidates; the first candidate is the
    untuned default unless ``defaults`` says otherwise) and implement :meth:`segment_labels`; those
    that learn from labels also set ``learns`` (and ``needs_training`` when they cannot predict
    without it) and implement :meth:`learn`. Interactive ones set ``prompts`` (the kinds of
    :class:`~segscope.prompts.Prompt` they read) and implement :meth:`segment_labels_prompted`.

    Common options: ``preprocess`` / ``postprocess`` (step lists, see
    :func:`~segscope.classical.preprocess.preprocess` and
    :func:`~segscope.classical.morphology.postprocess`), ``tune_images`` (images scoring each
    candidate, default 6 or fewer for slow methods), ``learn_images`` (images a learned model is fitted
    on, default 20), ``max_trials`` (candidates tried at most, default 24 or fewer for slow methods),
    ``seed`` and ``time_budget_s`` (the default budget of :meth:`fit`). Any tunable parameter given as an
    option is fixed and not tuned.
    """

    family = "classical"
    task: ClassVar[str] = "binary"
    param_grid: ClassVar[dict[str, list[Any]]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    extra_options: ClassVar[tuple[str, ...]] = ()  # fixed, not tuned (e.g. a classifier's size)
    model_keys: ClassVar[tuple[str, ...]] = ()  # parameters the learned model depends on
    default_tune_images: ClassVar[int] = 6  # slow methods score candidates on fewer images
    default_max_trials: ClassVar[int] = 24
    learns: ClassVar[bool] = False  # fit() calls learn() (a colour model, a classifier, a bin mapping)
    needs_training: ClassVar[bool] = False  # predict() refuses to run before fit()

    def __init__(self, num_classes: int = 2, **options: Any) -> None:
        if int(num_classes) < 2:
            raise UserError(f"{self.name}: num_classes must be >= 2, got {num_classes}")
        known = set(self.tunable()) | set(COMMON_OPTIONS) | set(self.extra_options)
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(f"{self.name}: unknown options {unknown} (known: {', '.join(sorted(known))})")
        try:
            parse_steps(options.get("preprocess"), PREPROCESSORS, "preprocess")
            parse_steps(options.get("postprocess"), POSTPROCESSORS, "postprocess")
        except ValueError as exc:
            raise UserError(f"{self.name}: {exc}") from None
        for key in ("tune_images", "learn_images", "max_trials"):
            if key in options and (not isinstance(options[key], int) or options[key] < 1):
                raise UserError(f"{self.name}: option {key} must be a positive integer, got {options[key]!r}")
        super().__init__(num_classes, **options)
        fixed = {k: v for k, v in options.items() if k in self.tunable()}
        self.params: dict[str, Any] = {**self.default_params(), **fixed}
        self.model: dict[str, Any] | None = None  # JSON-able learned state (colour model, classifier)

    # -- what is tuned -------------------------------------------------------------------------
    def tunable(self) -> dict[str, list[Any]]:
        """Tunable parameter -> candidate values."""
        return dict(self.param_grid)

    def default_params(self) -> dict[str, Any]:
        return {k: self.defaults.get(k, v[0]) for k, v in self.tunable().items()}

    def candidates(self) -> list[dict[str, Any]]:
        """The defaults first, then the grid (a seeded random sample of it when above ``max_trials``)."""
        grid = {k: ([self.options[k]] if k in self.options else v) for k, v in self.tunable().items()}
        first = self.params
        combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        combos = [c for c in combos if c != first]
        budget = self.options.get("max_trials", self.default_max_trials) - 1
        if len(combos) > budget:
            rng = np.random.default_rng(self.options.get("seed", 0))
            combos = [combos[i] for i in sorted(rng.choice(len(combos), budget, replace=False))]
        return [dict(first)] + combos

    # -- hooks ---------------------------------------------------------------------------------
    def learn(
        self, train: SegmentationDataset, indices: list[int], params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Learn a JSON-able model (colour model, classifier) from ``train[indices]``; none by default."""
        return None

    def training_pair(self, train: SegmentationDataset, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(pre-processed image, mask)`` of training sample ``index`` (for :meth:`learn`)."""
        image = train.load_image(index)
        mask = train.load_mask(index, image_shape=image.shape)
        return preprocess(image, self.options.get("preprocess")), mask

    def segment_labels(
        self, image: np.ndarray, params: dict[str, Any], model: dict[str, Any] | None
    ) -> np.ndarray:
        """Pre-processed ``(H, W, C)`` uint8 image -> ``(H, W)`` label map (before post-processing)."""
        raise TypeError(f"{type(self).__name__} must implement segment_labels")

    def segment_labels_prompted(
        self, image: np.ndarray, params: dict[str, Any], model: dict[str, Any] | None, prompt: Prompt
    ) -> np.ndarray:
        """Like :meth:`segment_labels`, guided by a non-empty ``prompt`` already checked against the
        image (methods with ``prompts`` implement it)."""
        raise TypeError(f"{type(self).__name__} must implement segment_labels_prompted")

    def score_target(self, mask: np.ndarray, ignore_index: int | None) -> tuple[np.ndarray, int, int | None]:
        """``(target, num_classes, ignore)`` that tuning scores predictions against."""
        return mask, self.num_classes, ignore_index

    def score_prediction(self, labels: np.ndarray) -> np.ndarray:
        return labels

    # -- fit / predict -------------------------------------------------------------------------
    def fit(
        self,
        train: SegmentationDataset,
        val: SegmentationDataset | None = None,
        *,
        time_budget_s: float | None = None,
        out_dir: str | Path | None = None,
        progress: bool = True,
    ) -> ClassicalSegmenter:
        """Tune the parameters not fixed by options on ``train`` (``val`` is not used)."""
        from segscope.metrics import ConfusionMatrix

        if len(train) == 0:
            raise UserError(f"{self.name}: the training set is empty")
        if train.num_classes != self.num_classes:
            raise UserError(
                f"{self.name}: built for {self.num_classes} classes, the training set has {train.num_classes}"
            )
        budget = time_budget_s if time_budget_s is not None else self.options.get("time_budget_s")
        deadline = time.perf_counter() + (budget if budget else float("inf"))
        tune_idx = evenly_spaced(len(train), self.options.get("tune_images", self.default_tune_images))
        learn_n = self.options.get("learn_images", 20)
        learn_idx = evenly_spaced(len(train), learn_n, exclude=set(tune_idx)) or tune_idx
        steps = self.options.get("preprocess")
        samples = []
        for i in tune_idx:
            image = train.load_image(i)
            target, k, ignore = self.score_target(
                train.load_mask(i, image_shape=image.shape), train.ignore_index
            )
            samples.append((preprocess(image, steps), target))
        models: dict[tuple, dict[str, Any] | None] = {}
        best, best_score, best_model = self.params, -1.0, None
        self.history = []
        for params in tqdm(self.candidates(), desc=f"tune {self.name}", disable=not progress, leave=False):
            key = tuple(repr(params[k]) for k in self.model_keys)
            if key not in models:
                models[key] = self.learn(train, learn_idx, params) if self.learns else None
            cm = ConfusionMatrix(k, ignore)
            for image, target in samples:
                cm.update(self.score_prediction(self._labels(image, params, models[key])), target)
            score = float(cm.mean_iou())
            self.history.append({"trial": len(self.history) + 1, **params, "train_mean_iou": score})
            if score > best_score:
                best, best_score, best_model = params, score, models[key]
            if time.perf_counter() > deadline:
                break
        self.params, self.model = dict(best), best_model
        if out_dir is not None:
            self.save(out_dir)
        return self

    def _labels(
        self,
        image: np.ndarray,
        params: dict[str, Any],
        model: dict[str, Any] | None,
        prompt: Prompt | None = None,
    ) -> np.ndarray:
        if prompt:
            labels = self.segment_labels_prompted(image, params, model, prompt)
        else:
            labels = self.segment_labels(image, params, model)
        fg, bg = self.binary_classes()
        return postprocess(labels, self.options.get("postprocess"), foreground=fg, background=bg)

    def binary_classes(self) -> tuple[int | None, int | None]:
        """``(foreground, background)`` for binary methods; ``(None, None)`` for multi-label ones."""
        return None, None

    def predict(self, image: np.ndarray, *, prompt: Prompt | None = None) -> np.ndarray:
        """``(H, W, C)`` (or ``(H, W)``) uint8 image -> ``(H, W)`` int64 label map.

        ``prompt`` (a :class:`~segscope.prompts.Prompt`; ``None`` or empty: none) guides the methods whose
        ``prompts`` accept its kinds; any other method, or a box / point outside the image, raises a
        one-line :class:`UserError`. Post-processing still applies."""
        check_prompt_kinds(self.name, self.prompts, prompt)
        if self.needs_training and self.model is None:
            raise UserError(
                f"{self.name} learns from labelled images: fit it first (segscope train --method {self.name})"
            )
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(
                f"{self.name}: expected an (H, W[, C]) uint8 image, got {image.dtype} {image.shape}"
            )
        if prompt:
            prompt.check(image.shape, self.name)
        image = preprocess(image if image.ndim == 3 else image[..., None], self.options.get("preprocess"))
        return self._labels(image, self.params, self.model, prompt or None).astype(np.int64)

    def predict_many(self, images: list[np.ndarray], *, workers: int = 1) -> list[np.ndarray]:
        """Predict ``images``; ``workers > 1`` spreads them over a spawn-started process pool."""
        if workers <= 1 or len(images) < 2:
            return [self.predict(im) for im in images]
        workers = min(workers, len(images))
        chunk = max(1, len(images) // (4 * workers))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            return list(pool.map(_predict_with, itertools.repeat(self, len(images)), images, chunksize=chunk))

    # -- persistence ---------------------------------------------------------------------------
    def run_config(self) -> RunConfig:
        config = super().run_config()
        config.model.update(params=self.params, state=self.model)
        return config

    @classmethod
    def from_config(cls, config: RunConfig, run_dir: str | Path | None = None) -> ClassicalSegmenter:
        """Rebuild from the run config: options, tuned ``params`` and learned ``state``."""
        seg = cls(config.model["num_classes"], **config.model.get("options", {}))
        seg.params = {**seg.params, **config.model.get("params", {})}
        seg.model = config.model.get("state")
        seg.history = list(config.history)
        return seg


class SemanticSegmenter(ClassicalSegmenter):
    """A multi-label method: ``segment_labels`` returns the dataset's class indices directly."""

    task = "semantic"


class BinarySegmenter(ClassicalSegmenter):
    """A binary method: ``segment_mask(image, **params) -> bool`` object mask, mapped to the classes.

    Options ``foreground`` (class of the object; default 1) and ``background`` (class elsewhere;
    default the other class of a binary dataset, else 0). The tuned ``invert`` parameter learns the
    polarity: with ``polarity = "image"`` the method runs on the inverted image (is the object dark or
    bright?), with ``"mask"`` its mask is negated (is the object inside or outside the contour?).

    Interactive methods implement :meth:`segment_mask_prompted`; with a prompt the tuned ``invert`` is
    ignored: the prompt says where the object is, whatever its polarity.
    """

    task = "binary"
    polarity: ClassVar[str] = "image"
    tune_polarity: ClassVar[bool] = True

    def __init__(self, num_classes: int = 2, **options: Any) -> None:
        fg = options.pop("foreground", None)
        bg = options.pop("background", None)
        if num_classes != 2 and fg is None:
            raise UserError(
                f"{self.name} segments one foreground class; with {num_classes} classes pass the option "
                "foreground=<class>"
            )
        self.foreground = 1 if fg is None else int(fg)
        self.background = (1 - self.foreground if num_classes == 2 else 0) if bg is None else int(bg)
        for key, v in (("foreground", self.foreground), ("background", self.background)):
            if not 0 <= v < num_classes:
                raise UserError(f"{self.name}: {key}={v} is not a class index below {num_classes}")
        if self.foreground == self.background:
            raise UserError(f"{self.name}: foreground and background are both class {self.foreground}")
        super().__init__(num_classes, **options)
        if fg is not None:
            self.options["foreground"] = fg
        if bg is not None:
            self.options["background"] = bg

    def tunable(self) -> dict[str, list[Any]]:
        return {**self.param_grid, "invert": [False, True] if self.tune_polarity else [False]}

    def segment_mask(
        self, image: np.ndarray, params: dict[str, Any], model: dict[str, Any] | None
    ) -> np.ndarray:
        """Pre-processed uint8 image -> bool object mask."""
        raise TypeError(f"{type(self).__name__} must implement segment_mask")

    def segment_mask_prompted(
        self, image: np.ndarray, params: dict[str, Any], model: dict[str, Any] | None, prompt: Prompt
    ) -> np.ndarray:
        """Pre-processed uint8 image and a checked, non-empty prompt -> bool object mask (``params``
        without ``invert``)."""
        raise TypeError(f"{type(self).__name__} must implement segment_mask_prompted")

    def segment_labels_prompted(
        self, image: np.ndarray, params: dict[str, Any], model: dict[str, Any] | None, prompt: Prompt
    ) -> np.ndarray:
        p = {k: v for k, v in params.items() if k != "invert"}
        mask = self.segment_mask_prompted(image, p, model, prompt).astype(bool)
        return np.where(mask, self.foreground, self.background).astype(np.int64)

    def segment_labels(
        self, image: np.ndarray, params: dict[str, Any], model: dict[str, Any] | None
    ) -> np.ndarray:
        p = dict(params)
        invert = bool(p.pop("invert", False))
        if invert and self.polarity == "image":
            image = 255 - image
        mask = self.segment_mask(image, p, model).astype(bool)
        if invert and self.polarity == "mask":
            mask = ~mask
        return np.where(mask, self.foreground, self.background).astype(np.int64)

    def binary_classes(self) -> tuple[int | None, int | None]:
        return self.foreground, self.background

    def score_target(self, mask: np.ndarray, ignore_index: int | None) -> tuple[np.ndarray, int, int | None]:
        target = (mask == self.foreground).astype(np.int64)
        if ignore_index is not None:
            target[mask == ignore_index] = _SCORE_IGNORE
        return target, 2, _SCORE_IGNORE

    def score_prediction(self, labels: np.ndarray) -> np.ndarray:
        return (labels == self.foreground).astype(np.int64)
