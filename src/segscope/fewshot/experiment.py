"""The few-shot protocol end to end: train a head on seen classes, evaluate on unseen ones.

* **Training** (:func:`train_fewshot`): the dataset's training split is carved into a part the head
  learns from (85 %) and a *selection* part (15 %, seeded); episodes of the fold's **seen** classes only.
  The checkpoint kept is the one with the best mIoU on fixed selection episodes (seen classes, held-out
  training images): neither the unseen classes nor the evaluation split take part in any choice.
* **Evaluation** (:func:`evaluate_fewshot`): on another split (CamVid ``val``), a fixed, seeded list of
  test episodes of the fold's **unseen** classes per shot count, saved beside the scores
  (``episodes_<K>shot.json``). Every method (trained heads and the fine-tuning baseline) is scored on the
  very same episodes. Images and masks are resized to ``size`` (default 176 x 240) and scored at that
  size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segscope.errors import UserError
from segscope.fewshot.episodes import CAMVID_FOLDS, ClassFolds, EpisodeSampler, save_episodes
from segscope.fewshot.features import FeatureBank, FrozenFeatures
from segscope.fewshot.heads import HEADS
from segscope.fewshot.run import load_head, save_run
from segscope.fewshot.train import evaluate_episodes, finetune_predictor, head_predictor, train_head
from segscope.io import write_json_atomic

DEFAULT_SIZE = (176, 240)
MIN_PIXELS = 500  # at the dataset's resolution: 0.3 % of a 360 x 480 CamVid frame; slivers are not targets
SELECTION_FRACTION = 0.15


def default_folds(classes: Sequence[str], n_folds: int = 4) -> ClassFolds:
    """:data:`CAMVID_FOLDS` for CamVid's classes, else ``n_folds`` contiguous blocks of the classes less
    any named "background" (VOC's class 0, never a target, as in PASCAL-5i)."""
    if tuple(classes) == CAMVID_FOLDS.classes and n_folds == CAMVID_FOLDS.n_folds:
        return CAMVID_FOLDS
    background = [i for i, c in enumerate(classes) if c.strip("_").lower() == "background"]
    return ClassFolds.split(tuple(classes), n_folds, exclude=background)


def carve(n: int, fraction: float = SELECTION_FRACTION, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(learn, select)`` indices: a seeded ``fraction`` of ``range(n)`` held out for model selection."""
    from sklearn.model_selection import train_test_split

    learn, select = train_test_split(np.arange(n), test_size=fraction, random_state=seed)
    return sorted(int(i) for i in learn), sorted(int(i) for i in select)


def training_banks(
    data: str | Path, backbone: FrozenFeatures, size: tuple[int, int], *, seed: int = 0, progress: bool = True
) -> tuple[FeatureBank, FeatureBank]:
    """Features of the training split's learning part (with flips) and selection part (:func:`carve`)."""
    from segscope.data import open_dataset

    ds = open_dataset(data, "train")
    learn_idx, select_idx = carve(len(ds), seed=seed)
    learn = ds.subset(learn_idx, name=f"{ds.name}-learn")
    select = ds.subset(select_idx, name=f"{ds.name}-select")
    return (
        FeatureBank(learn, backbone, size, flip=True, progress=progress),
        FeatureBank(select, backbone, size, progress=progress),
    )


def train_fewshot(
    data: str | Path,
    out_dir: str | Path,
    *,
    method: str = "prototypes",
    fold: int = 0,
    n_folds: int = 4,
    ways: int = 1,
    shots: int = 1,
    size: tuple[int, int] = DEFAULT_SIZE,
    time_budget_s: float | None = 300.0,
    max_steps: int = 100_000,
    lr: float = 1e-3,
    min_pixels: int = MIN_PIXELS,
    policy: str = "ignore",
    selection_episodes: int = 100,
    seed: int = 0,
    progress: bool = True,
    backbone: FrozenFeatures | None = None,
    banks: tuple[FeatureBank, FeatureBank] | None = None,
) -> dict[str, Any]:
    """Train ``method`` on the seen classes of ``data``'s training split; write the run to ``out_dir``.

    ``banks`` (the learning and selection parts' features, as :func:`training_banks` builds them) lets
    several runs share one feature computation."""
    if method not in HEADS:
        raise UserError(f"--method {method!r}: trainable few-shot methods are {', '.join(HEADS)}")
    backbone = backbone or FrozenFeatures()
    bank, sel_bank = banks or training_banks(data, backbone, size, seed=seed, progress=progress)
    learn, select = bank.dataset, sel_bank.dataset
    folds = default_folds(learn.classes, n_folds)
    common = dict(ways=ways, shots=shots, min_pixels=min_pixels, policy=policy)
    sampler = EpisodeSampler(learn, folds, fold, mode="train", **common)
    sel_sampler = EpisodeSampler(select, folds, fold, mode="train", **common)
    head = HEADS[method](backbone.out_channels)
    result = train_head(
        head,
        bank,
        sampler,
        selection=(sel_bank, sel_sampler, sel_sampler.fixed(selection_episodes, seed + 1)),
        time_budget_s=time_budget_s,
        max_steps=max_steps,
        lr=lr,
        seed=seed,
        progress=progress,
    )
    meta = {
        "encoder": backbone.encoder_name,
        "size": list(size),
        "fold": fold,
        "folds": folds.to_dict(),
        "seen": [folds.classes[c] for c in folds.seen(fold)],
        "unseen": [folds.classes[c] for c in folds.unseen(fold)],
        "data": str(data),
        "protocol": {
            **sampler.describe(),
            "selection_images": len(select),
            "selection_episodes": selection_episodes,
        },
        "train": {
            "time_budget_s": time_budget_s,
            "lr": lr,
            "seed": seed,
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "best_step": result.best_step,
            "best_selection_miou": result.best_selection_miou,
        },  # fmt: skip
        "history": result.history,
    }
    save_run(out_dir, head, meta)
    return meta


def evaluate_fewshot(
    data: str | Path,
    out_dir: str | Path,
    *,
    runs: Sequence[str | Path] = (),
    baseline: bool = True,
    split: str = "val",
    fold: int | None = None,
    n_folds: int = 4,
    shots: Sequence[int] = (1, 5),
    ways: int = 1,
    episodes: int = 500,
    size: tuple[int, int] | None = None,
    min_pixels: int = MIN_PIXELS,
    seed: int = 0,
    finetune_steps: int = 50,
    gallery: int = 3,
    cross_domain: bool = False,
    progress: bool = True,
    backbone: FrozenFeatures | None = None,
    bank: FeatureBank | None = None,
) -> dict[str, Any]:
    """Score ``runs`` (and the fine-tuning baseline) on the same fixed unseen-class episodes of ``split``;
    write ``out_dir/fewshot.json`` and the episode lists. Returns the results.

    ``cross_domain`` tests heads trained on another dataset (CamVid) on this one's class folds, e.g.
    CVPPP leaves against background as one 1-way fold: every class is then unseen by construction."""
    from segscope.data import open_dataset

    heads = {}
    for run in runs:
        head, meta = load_head(run)
        name = head.method if head.method not in heads else f"{head.method} ({Path(run).name})"
        heads[name] = (head, meta)
    if heads:
        metas = [m for _, m in heads.values()]
        if len({(json_key(m["folds"]), m["fold"], tuple(m["size"]), m["encoder"]) for m in metas}) > 1:
            raise UserError(
                "the runs were trained on different folds, sizes or encoders: evaluate them apart"
            )
        fold = metas[0]["fold"] if fold is None and not cross_domain else fold
        if fold != metas[0]["fold"] and not cross_domain:
            raise UserError(f"--fold {fold}: the runs were trained with fold {metas[0]['fold']}")
        size = tuple(metas[0]["size"]) if size is None else tuple(size)
    if not heads and not baseline:
        raise UserError("nothing to evaluate: give --run directories or keep the fine-tuning baseline")
    size = tuple(size or DEFAULT_SIZE)
    fold = 0 if fold is None else fold
    ds = bank.dataset if bank is not None else open_dataset(data, split)
    folds = default_folds(ds.classes, n_folds)
    if heads:
        trained = ClassFolds.from_dict(next(iter(heads.values()))[1]["folds"])
        if trained.classes == tuple(ds.classes):
            folds = trained
        elif not cross_domain:
            raise UserError(
                f"{data}: its classes {list(ds.classes)} are not those the runs were trained on; "
                "pass --cross-domain to test them on this dataset's folds"
            )
    if bank is None:
        bank = FeatureBank(ds, backbone or FrozenFeatures(), size, progress=progress)
    predictors = {name: head_predictor(head) for name, (head, _) in heads.items()}
    if baseline:
        predictors["finetune"] = finetune_predictor(steps=finetune_steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"protocol": {}, "scores": {name: {} for name in predictors}}
    for k in shots:
        sampler = EpisodeSampler(ds, folds, fold, mode="test", ways=ways, shots=k, min_pixels=min_pixels)
        eps = sampler.fixed(episodes, seed)
        save_episodes(out / f"episodes_{k}shot.json", eps, {**sampler.describe(), "seed": seed})
        examples: list = []
        scores = evaluate_episodes(
            predictors,
            bank,
            sampler,
            eps,
            progress=progress,
            desc=f"{k}-shot",
            examples=examples,
            keep=gallery,
        )
        results.setdefault("gallery", []).extend(write_gallery(out, sampler, examples, size, f"{k}shot"))
        for name, s in scores.items():
            results["scores"][name][f"{k}-shot"] = s
        unseen = [folds.classes[c] for c in folds.unseen(fold)]
        results["protocol"] = {
            **sampler.describe(),
            **{"seed": seed, "episodes": episodes, "shots": list(shots), "split": split},
            **{"size": list(size), "unseen": unseen},
        }
    results["runs"] = {
        name: {k: m[k] for k in ("train", "protocol", "seen", "unseen")} for name, (_, m) in heads.items()
    }
    results["finetune_steps"] = finetune_steps if baseline else None
    write_json_atomic(out / "fewshot.json", results)
    return results


def json_key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def write_gallery(out: Path, sampler: EpisodeSampler, examples: list, size, tag: str) -> list[dict[str, Any]]:
    """Overlays of a few episodes (first support image, query truth, each method) as PNGs in
    ``out/gallery``; returns their descriptions for the report."""
    from segscope.visualize import overlay, write_png

    palette = np.array([(0, 0, 0), (255, 200, 0)] + [(0, 160, 255)] * 8, np.uint8)
    folder = out / "gallery"
    folder.mkdir(exist_ok=True)
    entries = []
    for n, (episode, preds) in enumerate(examples):
        data = sampler.load(episode, size=tuple(size))
        views = {"support": (data.support_images[0][0], data.support_masks[0][0])}
        views["truth"] = (data.query_images[0], data.query_labels[0])
        views.update({name: (data.query_images[0], labels[0]) for name, labels in preds.items()})
        files = {}
        for name, (image, labels) in views.items():
            shown = np.where(labels == 255, 0, labels).astype(np.uint8)
            path = folder / f"{tag}_ep{n}_{name}.png"
            write_png(path, overlay(image, shown, palette, alpha=0.5))
            files[name] = str(path.relative_to(out))
        classes = [sampler.folds.classes[c] for c in episode.classes]
        entries.append({"tag": tag, "episode": n, "classes": classes, "files": files})
    return entries
