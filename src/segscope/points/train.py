"""Training and using PointNet part segmentation: dataset, augmentation, the loop, the run directory.

The paper's settings (Qi et al., CVPR 2017, Sec. 4.2 and supplementary): Adam, learning rate 0.001, batch
32, BatchNorm, cross-entropy over the 50 parts plus 0.001 * L_reg of the feature transform; 2048 points per
training shape. Departures: a constant learning rate and PyTorch's BatchNorm momentum (the paper decays
both); training stops at a time budget or epoch count, keeping the checkpoint with the best instance mIoU
on a held-out validation split (never the test split).

Augmentation (per training sample): Gaussian jitter (sigma 0.01, clipped at 0.05, PointNet's
``jitter_point_cloud``), a random scale in [0.8, 1.25] and, optionally, a random rotation about the up (y)
axis. ShapeNet-Part shapes are consistently aligned, so rotation is off by default.

Run directory: ``config.json`` (``model``, ``train``, ``data``, ``best``, ``history``) and
``best.safetensors`` / ``last.safetensors`` (weights), each written atomically.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segscope.errors import DataError, TrainingDiverged, UserError
from segscope.io import write_json_atomic
from segscope.points.io import CATEGORY_NAMES, NUM_PARTS, PART_OFFSET, LabelledCloud, normalize_unit_sphere
from segscope.points.metrics import PartIoU

if TYPE_CHECKING:
    import torch

CONFIG = "config.json"


def augment(
    points: np.ndarray,
    rng: np.random.Generator,
    *,
    jitter: float = 0.01,
    clip: float = 0.05,
    scale: tuple[float, float] = (0.8, 1.25),
    rotate: bool = False,
) -> np.ndarray:
    """A randomly rotated (about y), scaled and jittered copy of (N, 3) ``points``; point order is kept, so
    per-point labels stay valid."""
    out = np.asarray(points, np.float64)
    if rotate:
        a = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(a), np.sin(a)
        out = out @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    out = out * rng.uniform(*scale)
    if jitter:
        out = out + np.clip(rng.normal(0, jitter, out.shape), -clip, clip)
    return out.astype(np.float32)


def global_labels(category: str, labels: np.ndarray) -> np.ndarray:
    """1-based labels within ``category`` -> indices among the network's 50 part outputs."""
    return np.asarray(labels, np.int64) - 1 + PART_OFFSET[category]


def restrict_to_category(logits: np.ndarray, category: str) -> np.ndarray:
    """(50, N) logits -> (N,) labels 1..P: the argmax over ``category``'s parts only (as the paper's
    evaluation)."""
    start = PART_OFFSET[category]
    return np.argmax(logits[start : start + NUM_PARTS[category]], axis=0) + 1


class PartSegDataset:
    """Training samples: ``points`` resampled points of a cloud (unit sphere, augmented), their part
    indices (of 50) and the category index: (points (n, 3) float32, labels (n,) int64, category int)."""

    def __init__(
        self, clouds: list[LabelledCloud], points: int, *, seed: int = 0, **augment_options: Any
    ) -> None:
        if not clouds:
            raise UserError("no training shapes")
        self.clouds = [c._replace(points=normalize_unit_sphere(c.points)) for c in clouds]
        self.n, self.options, self.rng = points, augment_options, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        cloud = self.clouds[i]
        m = len(cloud.points)
        idx = self.rng.choice(m, self.n, replace=m < self.n)
        points = augment(cloud.points[idx], self.rng, **self.options)
        return points, global_labels(cloud.category, cloud.labels[idx]), CATEGORY_NAMES.index(cloud.category)


@dataclass(frozen=True)
class TrainConfig:
    """``width`` 1.0 and ``points`` 2048 are the paper's network and input size."""

    points: int = 2048
    batch_size: int = 32
    lr: float = 1e-3
    reg_weight: float = 1e-3
    width: float = 1.0
    epochs: int | None = None  # None: until the time budget
    time_budget_s: float = 600.0
    jitter: float = 0.01
    scale: tuple[float, float] = (0.8, 1.25)
    rotate: bool = False
    seed: int = 0
    val_every: int | None = None  # validate every this many steps (None: at each epoch's end)


class PartSegmenter:
    """A trained PointNet: ``predict(points (N, 3), category) -> (N,) labels 1..P`` on all N points."""

    def __init__(self, model: torch.nn.Module, config: dict | None = None) -> None:
        self.model = model.eval()
        self.config = {"model": model_spec(model), **(config or {})}

    @classmethod
    def from_run(cls, run_dir: str | Path, tag: str = "best") -> PartSegmenter:
        from segscope.engine.checkpoint import load_weights

        path = Path(run_dir) / CONFIG
        if not path.is_file():
            raise UserError(f"{path}: not found (not a points run directory)")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: corrupt run config ({exc.msg})") from None
        if not isinstance(config.get("model"), dict):
            raise UserError(f"{path}: no model section")
        model = build_model(config["model"])
        load_weights(Path(run_dir) / f"{tag}.safetensors", model)
        return cls(model, config)

    def save(self, run_dir: str | Path, tag: str = "best") -> None:
        """Write ``<tag>.safetensors`` and ``config.json`` (its model section rebuilds the network)."""
        from segscope.engine.checkpoint import save_weights

        save_weights(Path(run_dir) / f"{tag}.safetensors", self.model, epoch=-1)
        write_json_atomic(Path(run_dir) / CONFIG, {"history": [], "best": None, **self.config})

    def logits(self, points: np.ndarray, categories: list[str]) -> np.ndarray:
        """(B, N, 3) raw points of B shapes of equal N -> (B, 50, N) logits (each cloud normalised to the
        unit sphere first)."""
        import torch

        batch = np.stack([normalize_unit_sphere(p) for p in points])
        category = torch.tensor([CATEGORY_NAMES.index(c) for c in categories])
        with torch.no_grad():
            return self.model(torch.from_numpy(batch), category).logits.numpy()

    def predict(self, points: np.ndarray, category: str) -> np.ndarray:
        points = np.asarray(points, np.float32)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) < 1:
            raise DataError(f"expected (N, 3) points, got {points.shape}")
        return restrict_to_category(self.logits(points[None], [category])[0], category)

    def predict_many(self, clouds: list[LabelledCloud], batch_size: int = 32) -> list[np.ndarray]:
        """Labels of every cloud (all its points); clouds of equal size go through in batches."""
        out: list[np.ndarray | None] = [None] * len(clouds)
        by_size: dict[int, list[int]] = {}
        for i, c in enumerate(clouds):
            by_size.setdefault(len(c.points), []).append(i)
        for members in by_size.values():
            for k in range(0, len(members), batch_size):
                chunk = members[k : k + batch_size]
                logits = self.logits(
                    np.stack([clouds[i].points for i in chunk]), [clouds[i].category for i in chunk]
                )
                for i, lg in zip(chunk, logits):
                    out[i] = restrict_to_category(lg, clouds[i].category)
        return out  # type: ignore[return-value]


def build_model(spec: dict) -> torch.nn.Module:
    from segscope.points.pointnet import PointNetPartSeg

    return PointNetPartSeg(
        spec.get("num_parts", 50),
        spec.get("num_categories", 16),
        width=spec.get("width", 1.0),
        input_transform=spec.get("input_transform", True),
        feature_transform=spec.get("feature_transform", True),
    )


def model_spec(model: torch.nn.Module) -> dict:
    """The ``model`` section of a run config that rebuilds ``model`` (a :class:`PointNetPartSeg`)."""
    return {
        "name": "pointnet_part_seg",
        "num_parts": model.num_parts,
        "num_categories": model.num_categories,
        "width": model.width,
        "input_transform": model.input_tnet is not None,
        "feature_transform": model.feature_tnet is not None,
    }


def evaluate_clouds(segmenter: PartSegmenter, clouds: list[LabelledCloud]) -> tuple[dict, list[np.ndarray]]:
    """(the :class:`~segscope.points.metrics.PartIoU` summary, the predicted labels) over labelled clouds."""
    preds = segmenter.predict_many(clouds)
    meter = PartIoU()
    for cloud, pred in zip(clouds, preds):
        meter.add(cloud.category, pred, cloud.labels)
    return meter.summary(), preds


def _batches(dataset: PartSegDataset, batch_size: int, rng: np.random.Generator):
    import torch

    order = rng.permutation(len(dataset))
    for k in range(0, len(order) - 1, batch_size):
        items = [dataset[int(i)] for i in order[k : k + batch_size]]
        if len(items) < 2:  # BatchNorm needs two samples
            continue
        pts, lab, cat = zip(*items)
        yield torch.from_numpy(np.stack(pts)), torch.from_numpy(np.stack(lab)), torch.tensor(cat)


def loss_terms(
    model: torch.nn.Module, points, labels, category, reg_weight: float
) -> tuple[Any, float, float]:
    """(total loss, cross-entropy, L_reg): cross-entropy over the 50 parts + reg_weight * L_reg."""
    import torch.nn.functional as F

    from segscope.points.pointnet import orthogonality_loss

    out = model(points, category)
    ce = F.cross_entropy(out.logits, labels)
    reg = orthogonality_loss(out.feature_transform) if out.feature_transform is not None else ce.new_zeros(())
    return ce + reg_weight * reg, ce.detach().item(), reg.detach().item()


def train_part_segmenter(
    train: list[LabelledCloud],
    val: list[LabelledCloud],
    out_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    data: dict | None = None,
    progress: bool = True,
) -> dict:
    """Train PointNet on ``train``; keep the best weights by instance mIoU on ``val``. Returns the run's
    config dict (also written to ``out_dir/config.json``)."""
    import torch
    from tqdm.auto import tqdm

    from segscope.engine.checkpoint import save_weights

    if not val:
        raise UserError("no validation shapes for checkpoint selection")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_model({"width": config.width})
    spec = model_spec(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    dataset = PartSegDataset(
        train,
        config.points,
        seed=config.seed + 1,
        jitter=config.jitter,
        scale=tuple(config.scale),
        rotate=config.rotate,
    )
    run = {"model": spec, "train": asdict(config), "data": data or {}, "best": None, "history": []}
    start, step, epoch, losses = time.monotonic(), 0, 0, []
    steps_per_epoch = max(1, len(dataset) // config.batch_size)
    bar = tqdm(
        total=config.epochs * steps_per_epoch if config.epochs else None, disable=not progress, unit="step"
    )

    def validate() -> None:
        summary, _ = evaluate_clouds(PartSegmenter(model, run), val)
        model.train()
        record = {
            "epoch": epoch,
            "step": step,
            "seconds": round(time.monotonic() - start, 1),
            "train_ce": float(np.mean(losses)) if losses else None,
            "val_instance_miou": summary["instance_miou"],
            "val_class_miou": summary["class_miou"],
        }
        losses.clear()
        run["history"].append(record)
        bar.set_postfix(epoch=epoch, val_miou=f"{summary['instance_miou']:.3f}")
        if run["best"] is None or summary["instance_miou"] > run["best"]["val_instance_miou"]:
            save_weights(out / "best.safetensors", model, epoch=epoch)
            run["best"] = {**record, "val_per_category": summary["per_category"]}
        save_weights(out / "last.safetensors", model, epoch=epoch)
        write_json_atomic(out / CONFIG, run)

    out_of_time = False
    while not out_of_time and (config.epochs is None or epoch < config.epochs):
        model.train()
        for points, labels, category in _batches(dataset, config.batch_size, rng):
            loss, ce, reg = loss_terms(model, points, labels, category, config.reg_weight)
            if not np.isfinite(loss.detach().item()):
                raise TrainingDiverged(
                    f"loss became {loss.detach().item()} at step {step}; best weights kept in {out}"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(ce)
            bar.update(1)
            bar.set_postfix(epoch=epoch, ce=f"{ce:.3f}", reg=f"{reg:.3f}")
            out_of_time = time.monotonic() - start >= config.time_budget_s
            if out_of_time:
                break
            if config.val_every and step % config.val_every == 0:
                validate()
        epoch += 1
        finished = out_of_time or (config.epochs is not None and epoch >= config.epochs)
        if (finished or not config.val_every) and not (run["history"] and run["history"][-1]["step"] == step):
            validate()
    bar.close()
    return run


def split_holdout(clouds: list[LabelledCloud], fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out): ``fraction`` of each category's shapes (at least one of two or more) held out."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for category in sorted({c.category for c in clouds}):
        members = [c for c in clouds if c.category == category]
        order = rng.permutation(len(members))
        n_held = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        held += [members[i] for i in order[:n_held]]
        keep += [members[i] for i in order[n_held:]]
    return keep, held
