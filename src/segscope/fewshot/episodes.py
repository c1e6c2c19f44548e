"""Few-shot segmentation episodes: class folds, a seeded episode sampler and episode arrays.

The protocol is PASCAL-5i's (Shaban et al., "One-shot learning for semantic segmentation", BMVC 2017,
OSLSM; Wang et al., PANet, ICCV 2019), built from any :class:`~segscope.data.SegmentationDataset`.

Folds. :class:`ClassFolds` splits the classes (less ``exclude``, e.g. a background class never used as a
target) into contiguous blocks: fold ``f``'s classes are *unseen* (tested), every other non-excluded class
is *seen* (trained on). :data:`CAMVID_FOLDS` = ``ClassFolds.split(CAMVID_CLASSES, 4)``: fold 0 = Sky,
Building, Pole; fold 1 = Road, Pavement, Tree; fold 2 = SignSymbol, Fence, Car; fold 3 = Pedestrian,
Bicyclist.

Episodes. An :class:`Episode` holds dataset indices only: ``ways`` target classes (way ``k`` is label
``k + 1`` in the query target), ``shots`` support images per way and ``queries`` query images. All
``ways * shots + queries`` images of an episode are distinct. An image is *eligible* for class ``c`` when
it has at least ``min_pixels`` pixels of ``c``; every support image of way ``k`` is eligible for way
``k``'s class, and query ``j`` is eligible for way ``j % ways``'s class (with ``ways = 1`` every query
contains the class; with ``ways > 1`` each query contains at least one of the ways' classes, and the
ways take turns). Classes are drawn uniformly without replacement, images uniformly from the eligible.

* mode ``"test"``: targets are ``folds.unseen(fold)``. Pixels of any other class are background.
* mode ``"train"``: targets are ``folds.seen(fold)``, and **no unseen class leaks into training**.
  With ``policy="ignore"`` (default) every pixel of an unseen class becomes 255 (ignore) in the support
  masks and query labels, so the loss never sees it. OSLSM and PANet binarise the PASCAL masks, so
  unseen-class pixels of training images are plain background there; we are stricter, since "this
  object is background" is itself a lesson about the unseen class. With ``policy="exclude"`` (the stricter
  choice of the PFENet code line, whose descendants such as BAM filter meta-training lists this way) an
  image with >= 1 pixel of any unseen class is not eligible at all. On CamVid "exclude" leaves almost
  nothing: of the 367 train images only 0 / 0 / 7 / 43 remain for folds 0 / 1 / 2 / 3 (Sky, Building,
  Pole, Road are in >= 99.5% of the images, Car in 98%, Pedestrian in 86%; of the 101 val images none
  remain for any fold), so folds 0-2 cannot be trained at all; hence "ignore" is the default.

Arrays (:meth:`EpisodeSampler.load` -> :class:`EpisodeData`), all ``(H, W)`` int64: a support mask is
1 = its way's class, 0 = anything else, 255 = ignore; a query label is 0 = background, ``k + 1`` = way
``k``'s class, 255 = ignore. Ignore = the dataset's ignore pixels, plus (mode "train") unseen classes.

Reproducibility: :meth:`EpisodeSampler.fixed` draws ``n`` episodes from ``np.random.default_rng(seed)``;
the list depends only on the dataset's per-image class counts, the fold, the sampler's settings and the
seed, so it is the same on every call and in every process (for a given NumPy). :func:`save_episodes` /
:func:`load_episodes` store such a list as JSON. Per-image class pixel counts are read once per dataset
(:func:`class_pixel_counts`, memoised in-process) and may be passed in as ``counts``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segscope.data.formats import CAMVID_CLASSES as _CAMVID_CLASSES
from segscope.errors import UserError

CAMVID_CLASSES: tuple[str, ...] = tuple(_CAMVID_CLASSES)  # the 11 classes of segscope's CamVid layout
IGNORE = 255  # the ignore label of support masks and query labels
MODES = ("train", "test")
POLICIES = ("ignore", "exclude")
_FORMAT = "segscope-episodes"
_SETTINGS = ("fold", "mode", "ways", "shots", "queries", "min_pixels", "policy")


@dataclass(frozen=True)
class ClassFolds:
    """Classes split into folds; fold f's classes are unseen (test), the rest seen (train)."""

    classes: tuple[str, ...]
    folds: tuple[tuple[int, ...], ...]
    exclude: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "folds", tuple(tuple(int(c) for c in f) for f in self.folds))
        object.__setattr__(self, "exclude", tuple(int(c) for c in self.exclude))
        k = len(self.classes)
        used = [c for f in self.folds for c in f] + list(self.exclude)
        bad = sorted({c for c in used if not 0 <= c < k})
        if bad:
            raise UserError(f"class folds: class indices {bad} outside 0..{k - 1}")
        dup = sorted({c for c in used if used.count(c) > 1})
        if dup:
            raise UserError(f"class folds: classes {[self.classes[c] for c in dup]} in more than one fold")
        if not self.folds or any(not f for f in self.folds):
            raise UserError("class folds: need at least one fold and no empty fold")

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    def unseen(self, fold: int) -> tuple[int, ...]:
        """Fold ``fold``'s classes: the test classes of that fold."""
        if not isinstance(fold, int | np.integer) or not 0 <= fold < len(self.folds):
            raise UserError(f"fold {fold!r} out of range: {len(self.folds)} folds (0-{len(self.folds) - 1})")
        return self.folds[int(fold)]

    def seen(self, fold: int) -> tuple[int, ...]:
        """Every class neither in fold ``fold`` nor excluded: the training classes of that fold."""
        unseen = set(self.unseen(fold)) | set(self.exclude)
        return tuple(c for c in range(len(self.classes)) if c not in unseen)

    @classmethod
    def split(cls, classes: Sequence[str], n_folds: int, exclude: Iterable[int | str] = ()) -> ClassFolds:
        """Contiguous blocks, PASCAL-5i style: the non-excluded classes in index order cut into
        ``n_folds`` blocks of ``m = n // n_folds``; the first ``n % n_folds`` folds take one more."""
        classes = tuple(classes)
        excl = tuple(sorted({classes.index(c) if isinstance(c, str) else int(c) for c in exclude}))
        pool = [c for c in range(len(classes)) if c not in excl]
        if not 1 <= n_folds <= len(pool):  # one fold: every class unseen (a cross-domain test set)
            raise UserError(f"class folds: n_folds must be 1..{len(pool)} for {len(pool)} classes")
        m, r = divmod(len(pool), n_folds)
        bounds = np.cumsum([0] + [m + (i < r) for i in range(n_folds)])
        folds = tuple(tuple(pool[bounds[i] : bounds[i + 1]]) for i in range(n_folds))
        return cls(classes, folds, excl)

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "folds": [list(f) for f in self.folds],
            "exclude": list(self.exclude),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClassFolds:
        return cls(tuple(d["classes"]), tuple(tuple(f) for f in d["folds"]), tuple(d.get("exclude", ())))


CAMVID_FOLDS = ClassFolds.split(CAMVID_CLASSES, 4)


@dataclass(frozen=True)
class Episode:
    """One episode as dataset indices: ``classes`` in way order, ``support[way]`` = K indices, ``query``."""

    classes: tuple[int, ...]
    support: tuple[tuple[int, ...], ...]
    query: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "support": [list(s) for s in self.support],
            "query": list(self.query),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Episode:
        return cls(
            tuple(int(c) for c in d["classes"]),
            tuple(tuple(int(i) for i in s) for s in d["support"]),
            tuple(int(i) for i in d["query"]),
        )


@dataclass
class EpisodeData:
    """The arrays of one episode (see the module docstring for the label values)."""

    support_images: list[list[np.ndarray]]
    support_masks: list[list[np.ndarray]]
    query_images: list[np.ndarray]
    query_labels: list[np.ndarray]
    classes: tuple[int, ...] = field(default=())


# -- per-image class counts --------------------------------------------------------------------------
_COUNTS: dict[tuple, np.ndarray] = {}
_COUNTS_MAX = 16


def _fingerprint(dataset: Any) -> tuple | None:
    samples = getattr(dataset, "samples", None)
    if samples is None:
        return None
    files = []
    for s in samples:
        if s.mask is None:
            raise UserError(f"{s.image}: no mask; few-shot episodes need a labelled dataset")
        try:
            st = Path(s.mask).stat()
        except OSError:
            return None  # load_mask will name the missing file
        files.append((str(s.mask), st.st_mtime_ns, st.st_size))
    return (dataset.num_classes, dataset.ignore_index, repr(dataset.codec), tuple(files))


def class_pixel_counts(dataset: Any, *, progress: bool = False) -> np.ndarray:
    """Pixels of each class in each image: ``(N, K)`` int64, ignore pixels not counted.

    Reads every mask once; the result is memoised in-process (keyed by the mask files, their mtimes and
    sizes, the classes' count, the ignore index and the codec) and returned read-only, so later calls
    for the same dataset, or another dataset object over the same files, are free.
    """
    key = _fingerprint(dataset)
    if key is not None and key in _COUNTS:
        return _COUNTS[key]
    from tqdm.auto import tqdm

    k = dataset.num_classes
    out = np.zeros((len(dataset), k), np.int64)
    for i in tqdm(range(len(dataset)), desc="class counts", disable=not progress, leave=False):
        m = np.asarray(dataset.load_mask(i)).ravel()
        out[i] = np.bincount(m[(m >= 0) & (m < k)], minlength=k)[:k]
    out.setflags(write=False)
    if key is not None:
        if len(_COUNTS) >= _COUNTS_MAX:
            _COUNTS.pop(next(iter(_COUNTS)))
        _COUNTS[key] = out
    return out


# -- the sampler -------------------------------------------------------------------------------------
class EpisodeSampler:
    """Draws :class:`Episode` s of ``dataset`` for fold ``fold`` of ``folds`` (see the module docstring).

    Attributes
    ----------
    targets : the classes episodes target (unseen in "test", seen in "train"), sorted.
    allowed : ``(N,)`` bool, the images any episode may use ("exclude" drops those with unseen pixels).
    pools : class -> sorted dataset indices eligible for it.
    """

    def __init__(
        self,
        dataset: Any,
        folds: ClassFolds,
        fold: int,
        *,
        mode: str = "test",
        ways: int = 1,
        shots: int = 1,
        queries: int = 1,
        min_pixels: int = 1,
        policy: str = "ignore",
        counts: np.ndarray | None = None,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"episodes: mode must be one of {MODES}, got {mode!r}")
        if policy not in POLICIES:
            raise UserError(f"episodes: policy must be one of {POLICIES}, got {policy!r}")
        for name, v in (("ways", ways), ("shots", shots), ("queries", queries), ("min_pixels", min_pixels)):
            if not isinstance(v, int | np.integer) or v < 1:
                raise UserError(f"episodes: {name} must be an integer >= 1, got {v!r}")
        if tuple(dataset.classes) != folds.classes:
            raise UserError(
                f"episodes: folds are for classes {list(folds.classes)}, dataset "
                f"{dataset.name or ''!r} has {list(dataset.classes)}"
            )
        self.dataset, self.folds, self.fold, self.mode = dataset, folds, int(fold), mode
        self.ways, self.shots, self.queries = int(ways), int(shots), int(queries)
        self.min_pixels, self.policy = int(min_pixels), policy
        self.unseen = folds.unseen(fold)
        self.targets = tuple(sorted(self.unseen if mode == "test" else folds.seen(fold)))
        counts = class_pixel_counts(dataset) if counts is None else np.asarray(counts)
        if counts.shape != (len(dataset), len(folds.classes)):
            raise UserError(
                f"episodes: counts have shape {counts.shape}, expected ({len(dataset)}, {len(folds.classes)})"
            )
        self.counts = counts
        self.allowed = np.ones(len(dataset), bool)
        if mode == "train" and policy == "exclude":
            self.allowed &= counts[:, list(self.unseen)].sum(1) == 0
        ok = self.allowed[:, None] & (counts >= self.min_pixels)
        self.pools = {c: np.flatnonzero(ok[:, c]) for c in self.targets}
        where = f"fold {self.fold} {mode}"
        if self.ways > len(self.targets):
            raise UserError(f"episodes: {self.ways} ways but {where} has {len(self.targets)} target classes")
        need = self.shots + -(-self.queries // self.ways)  # shots + the most queries one way gets
        short = [f"{folds.classes[c]} ({len(p)})" for c, p in self.pools.items() if len(p) < need]
        self.skipped = tuple(c for c, p in self.pools.items() if len(p) < need)
        if short and mode == "train" and len(self.targets) - len(self.skipped) >= self.ways:
            # a seen class too rare for an episode is simply not trained on (listed in describe())
            self.targets = tuple(c for c in self.targets if c not in self.skipped)
            self.pools = {c: self.pools[c] for c in self.targets}
            short = []
        if short:
            raise UserError(
                f"episodes: {where} (min_pixels {self.min_pixels}, policy {policy!r}): an episode needs "
                f"{need} eligible images per class ({self.shots} shots + queries); short: {', '.join(short)}"
            )

    def describe(self) -> dict:
        """The settings that determine the episodes (e.g. ``meta`` for :func:`save_episodes`)."""
        out = {"dataset": self.dataset.name, "num_images": len(self.dataset), "folds": self.folds.to_dict()}
        out |= {k: getattr(self, k) for k in _SETTINGS}
        return out | {"skipped_classes": [self.folds.classes[c] for c in self.skipped]}

    def sample(self, rng: np.random.Generator) -> Episode:
        """One episode drawn with ``rng``."""
        for _ in range(100):  # only ways > 1 with heavily overlapping pools can need a retry
            classes = tuple(int(c) for c in rng.choice(self.targets, self.ways, replace=False))
            used: set[int] = set()
            picks = [self._pick(rng, c, self.shots, used) for c in classes]
            picks += [self._pick(rng, classes[j % self.ways], 1, used) for j in range(self.queries)]
            if all(p is not None for p in picks):
                return Episode(classes, tuple(picks[: self.ways]), tuple(p[0] for p in picks[self.ways :]))
        raise UserError(
            f"episodes: fold {self.fold} {self.mode}: cannot find {self.ways * self.shots + self.queries} "
            f"distinct images for a {self.ways}-way {self.shots}-shot episode"
        )

    def _pick(self, rng: np.random.Generator, c: int, n: int, used: set[int]) -> tuple[int, ...] | None:
        pool = self.pools[c]
        if used:
            pool = pool[~np.isin(pool, list(used))]
        if len(pool) < n:
            return None
        picked = tuple(int(i) for i in rng.choice(pool, n, replace=False))
        used.update(picked)
        return picked

    def fixed(self, n: int, seed: int) -> list[Episode]:
        """``n`` episodes drawn from ``np.random.default_rng(seed)``: the same list on every call."""
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(int(n))]

    # -- arrays --------------------------------------------------------------------------------------
    def label_table(self, classes: Sequence[int]) -> np.ndarray:
        """Dataset mask value -> episode label; index K stands for the dataset's ignore index."""
        lut = np.zeros(len(self.folds.classes) + 1, np.int64)
        if self.mode == "train":
            lut[list(self.unseen)] = IGNORE
        for k, c in enumerate(classes):
            lut[c] = k + 1
        lut[-1] = IGNORE
        return lut

    def _mask(self, index: int, image_shape: tuple[int, ...]) -> np.ndarray:
        m = self.dataset.load_mask(index, image_shape=image_shape)
        ignore = self.dataset.ignore_index
        k = len(self.folds.classes)
        return np.where(m == ignore, k, m) if ignore is not None else m

    def load(self, episode: Episode, *, size: tuple[int, int] | None = None) -> EpisodeData:
        """Read an episode's images and build its masks; ``size = (height, width)`` resizes them (images
        by area averaging when shrinking, bilinear when enlarging; masks and labels nearest)."""
        s_images: list[list[np.ndarray]] = []
        s_masks: list[list[np.ndarray]] = []
        for c, indices in zip(episode.classes, episode.support, strict=True):
            lut = self.label_table([c])
            ims = [self.dataset.load_image(i) for i in indices]
            s_images.append([_resize(im, size, False) for im in ims])
            s_masks.append([_resize(lut[self._mask(i, im.shape)], size, True) for i, im in zip(indices, ims)])
        lut = self.label_table(episode.classes)
        q_images, q_labels = [], []
        for i in episode.query:
            im = self.dataset.load_image(i)
            q_images.append(_resize(im, size, False))
            q_labels.append(_resize(lut[self._mask(i, im.shape)], size, True))
        return EpisodeData(s_images, s_masks, q_images, q_labels, tuple(episode.classes))


def _resize(a: np.ndarray, size: tuple[int, int] | None, labels: bool) -> np.ndarray:
    if size is None or tuple(a.shape[:2]) == tuple(size):
        return a
    import cv2

    h, w = int(size[0]), int(size[1])
    if labels:
        return cv2.resize(a.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
    shrink = h <= a.shape[0] and w <= a.shape[1]
    out = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape(h, w, a.shape[2]) if a.ndim == 3 else out


# -- persistence -------------------------------------------------------------------------------------
def save_episodes(path: str | Path, episodes: Sequence[Episode], meta: dict | None = None) -> None:
    """Write ``episodes`` and ``meta`` (e.g. :meth:`EpisodeSampler.describe`) as JSON, atomically."""
    from segscope.io import write_json_atomic

    episodes = [e.to_dict() for e in episodes]
    write_json_atomic(path, {"format": _FORMAT, "version": 1, "meta": dict(meta or {}), "episodes": episodes})


def load_episodes(path: str | Path) -> tuple[list[Episode], dict]:
    """``(episodes, meta)`` from a :func:`save_episodes` file; a one-line :class:`UserError` if not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: episode file not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read episode file ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise UserError(f"{path}: not a segscope episode file")
    try:
        return [Episode.from_dict(e) for e in doc["episodes"]], dict(doc.get("meta") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: malformed episode file ({type(exc).__name__}: {exc})") from None
