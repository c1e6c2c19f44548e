"""``segscope refine``: improve a mask with a quality oracle (local or global), or train the oracle.

segscope refine train --data DIR --out ORACLE_DIR [--kind local|global] [--epochs N | --time-budget 5m]
segscope refine --oracle ORACLE_DIR --image IMG --mask MASK --out DIR
segscope refine --oracle ORACLE_DIR --image IMG --from-scratch --out DIR
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from segscope.cli.common import parse_duration
from segscope.errors import UserError

EXAMPLES = """examples:
  segscope refine train --data isbi2012/ --out oracles/isbi --classes 0 --time-budget 5m
  segscope refine --oracle oracles/isbi --image 07.png --mask preds/07.png --out refined/
  segscope refine --oracle oracles/isbi --image 07.png --from-scratch --iterations 200 --out scratch/"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Create ``refine`` (refine one mask) with its ``train`` verb (train an oracle)."""
    p = sub.add_parser(
        "refine",
        help="refine a mask with a quality oracle (or `refine train` one)",
        description=textwrap.fill(
            "Refine with a quality oracle (Fernandes, Cruz & Cardoso, IJCNN 2018): a local oracle moves the "
            "map towards its per-pixel truth estimate or ascends its estimated Dice; a global one ascends "
            "its predicted Dice/IoU. Writes DIR/<stem>.png (class indices), <stem>_prob.png (refined "
            "probability x 255), "
            "<stem>_overlay.png and <stem>_refine.json (predicted quality before and after).",
            width=88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--oracle", metavar="ORACLE_DIR", help="oracle run written by `segscope refine train`")
    p.add_argument("--image", metavar="IMG", help="image file")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--mask", metavar="MASK", help="mask to refine: a label PNG or a probability map")
    start.add_argument("--from-scratch", action="store_true", help="start from an uninformed mask (--init)")
    p.add_argument("--init", default="empty", help="from-scratch start: empty, half, noise or a value")
    p.add_argument(
        "--mask-format",
        choices=("auto", "labels", "prob"),
        default="auto",
        help="labels: class indices (0/255 for binary); prob: grey = probability x 255 of the oracle's "
        "class; auto: labels when the values allow it (default)",
    )
    p.add_argument(
        "--iterations", type=int, default=None, help="maximum steps (default 50; 200 from scratch)"
    )
    p.add_argument("--step", type=float, default=None, help="step size (default 0.1 clip, 0.5 logit)")
    p.add_argument("--parametrization", choices=("clip", "logit"), default="clip", help="keep m in [0, 1]")
    p.add_argument("--patience", type=int, default=10, help="stop after this many steps without gain")
    p.add_argument(
        "--update",
        choices=("fixed_point", "ascent"),
        default="fixed_point",
        help="local oracle: move towards its true-class map, or ascend its estimated Dice",
    )
    p.add_argument("--prior-weight", type=float, default=0.0, help="local ascent: trust-region weight")
    p.add_argument("--out", metavar="DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    verbs = p.add_subparsers(dest="refine_verb", metavar="VERB")
    _add_train_parser(verbs)


def _add_train_parser(verbs: argparse._SubParsersAction) -> None:
    from segscope.cli.common import add_data_arguments

    t = verbs.add_parser(
        "train",
        help="train a quality oracle on degraded masks of a labelled dataset",
        description="Degrade every training mask many times (erosion, dilation, warps, shifts, holes, "
        "blobs, noise, soft masks), learn q(image, mask) -> true Dice/IoU, report the held-out "
        "Pearson/Spearman/MAE and save ORACLE_DIR/oracle.safetensors + oracle.json.",
    )
    add_data_arguments(t, split=None)
    t.add_argument("--out", dest="oracle_out", required=True, metavar="ORACLE_DIR", help="output folder")
    t.add_argument(
        "--kind",
        choices=("local", "global"),
        default="local",
        help="local: full-resolution per-pixel quality map (default); global: one score at --size",
    )
    t.add_argument("--crop", type=int, default=192, help="local: training crop side (default 192)")
    t.add_argument("--self-rounds", type=int, default=0, help="local: rounds on its own refinements")
    t.add_argument("--quality", choices=("dice", "iou"), default="dice", help="target (default dice)")
    t.add_argument("--classes", default=None, help="classes to score, e.g. 0 or 0,1 (default: foreground)")
    t.add_argument("--val-split", default=None, help="a split of the dataset for held-out evaluation")
    t.add_argument(
        "--val-fraction", type=float, default=0.2, help="else this seeded fraction held out (default 0.2)"
    )
    t.add_argument("--size", type=int, default=128, help="oracle input side (default 128)")
    t.add_argument(
        "--samples-per-image", type=int, default=None, help="degraded masks per image (48 global, 24 local)"
    )
    t.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    t.add_argument("--time-budget", type=parse_duration, default=None, metavar="DURATION", help="e.g. 5m")
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=None, help="default 1e-3 global, 2e-3 local")
    t.add_argument("--base-channels", type=int, default=16)
    t.add_argument("--depth", type=int, default=None, help="default 4 global, 3 local")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Train an oracle and print its held-out agreement."""
    from segscope.data import open_dataset
    from segscope.data.splits import holdout_split
    from segscope.oracle import train_oracle

    train = open_dataset(args.data, args.split, format=args.format)
    if args.val_split:
        val = open_dataset(args.data, args.val_split, format=args.format)
    elif args.val_fraction > 0:
        if not 0 < args.val_fraction < 1:
            raise UserError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
        train, val = holdout_split(train, args.val_fraction, args.seed)
    else:
        val = None
    classes = None if args.classes is None else _int_list(args.classes, "--classes")
    if args.kind == "local":
        from segscope.oracle.local_train import train_local_oracle

        run = train_local_oracle(
            train,
            out_dir=args.oracle_out,
            val=val,
            quality=args.quality,
            classes=classes,
            samples_per_image=args.samples_per_image or 24,
            crop=args.crop,
            epochs=args.epochs,
            time_budget_s=args.time_budget,
            batch_size=args.batch_size,
            lr=args.lr or 2e-3,
            base_channels=args.base_channels,
            depth=args.depth or 3,
            seed=args.seed,
            device=args.device,
            self_rounds=args.self_rounds,
            progress=not args.quiet,
        )
        return _report_training(run, args, val)
    run = train_oracle(
        train,
        out_dir=args.oracle_out,
        val=val,
        quality=args.quality,
        classes=classes,
        size=args.size,
        samples_per_image=args.samples_per_image or 48,
        epochs=args.epochs,
        time_budget_s=args.time_budget,
        batch_size=args.batch_size,
        lr=args.lr or 1e-3,
        base_channels=args.base_channels,
        depth=args.depth or 4,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    return _report_training(run, args, val)


def _report_training(run: Any, args: argparse.Namespace, val: Any) -> int:
    m = run.val_metrics
    if m:
        print(
            f"held-out {args.quality}: pearson {m['pearson']:.3f}  spearman {m['spearman']:.3f}  "
            f"MAE {m['mae']:.3f}  ({m['n']} masks of {len(val)} images)"
        )
    print(f"oracle trained in {run.seconds:.0f} s ({len(run.history)} epochs); written to {run.run_dir}")
    return 0


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated class indices, got {text!r}") from None


def read_mask(path: Path, num_classes: int, fmt: str) -> tuple[str, np.ndarray]:
    """``("labels", (H, W) int64)`` or ``("prob", (H, W) float32 in [0, 1])`` from a mask file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "P", "I", "I;16", "1") else im)
    except FileNotFoundError:
        raise UserError(f"{path}: mask file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: cannot read mask ({str(exc)[:120]})") from None
    arr = arr.astype(np.int64)
    values = set(np.unique(arr).tolist())
    is_index = values <= set(range(num_classes))
    is_binary = num_classes == 2 and values <= {0, 255}
    if fmt == "labels" or (fmt == "auto" and (is_index or is_binary)):
        if not (is_index or is_binary):
            raise UserError(f"{path}: values {sorted(values)[:6]} are not labels of {num_classes} classes")
        return "labels", (arr == 255).astype(np.int64) if is_binary and not is_index else arr
    if arr.max() > 255:
        raise UserError(f"{path}: a probability mask must be 8-bit grey (values 0..255)")
    return "prob", (arr / 255.0).astype(np.float32)


def run(args: argparse.Namespace) -> int:
    """Refine one mask (or segment from scratch) and write the results."""
    from segscope.data import default_palette, read_image
    from segscope.io import write_json_atomic
    from segscope.oracle.local import LocalQualityOracle
    from segscope.oracle.quality import load_any_oracle
    from segscope.oracle.refine import initial_mask, refine_classes, refine_mask
    from segscope.visualize import overlay, write_png

    missing = [f"--{n}" for n in ("oracle", "image", "out") if not getattr(args, n)]
    if missing or not (args.mask or args.from_scratch):
        need = missing + ([] if args.mask or args.from_scratch else ["--mask or --from-scratch"])
        raise UserError(f"refine needs {', '.join(need)} (or `segscope refine train ...` to train an oracle)")
    oracle = load_any_oracle(args.oracle)
    image = read_image(args.image)
    if isinstance(oracle, LocalQualityOracle):
        return _run_local(oracle, image, args)
    options = {"step": args.step, "parametrization": args.parametrization, "patience": args.patience}
    options["iterations"] = (
        args.iterations if args.iterations is not None else (200 if args.from_scratch else 50)
    )
    options["progress"] = not args.quiet
    k = oracle.num_classes
    if args.from_scratch:
        kind, mask = "prob", initial_mask(image.shape[:2], args.init)
    else:
        kind, mask = read_mask(Path(args.mask), k, args.mask_format)
    if mask.shape != image.shape[:2]:
        raise UserError(f"{args.mask}: mask size {mask.shape[::-1]} differs from image {image.shape[1::-1]}")
    if kind == "labels":
        proba, details = refine_classes(
            oracle, image, np.eye(k, dtype=np.float32)[mask].transpose(2, 0, 1), **options
        )
    else:
        if len(oracle.classes) != 1:
            raise UserError(f"{args.mask or 'from scratch'}: a probability map needs a one-class oracle")
        cls = oracle.classes[0]
        r = refine_mask(oracle, image, mask, class_index=cls, **options)
        details = {cls: r}
        proba = np.zeros((k, *mask.shape), np.float32)
        proba[cls] = r.mask
        if k == 2:
            proba[1 - cls] = 1 - r.mask
    labels = proba.argmax(0).astype(np.uint8)
    out = Path(args.out)
    stem = Path(args.image).stem
    write_png(out / f"{stem}.png", labels)
    write_png(out / f"{stem}_prob.png", (proba[oracle.classes[0]] * 255).round().astype(np.uint8))
    write_png(out / f"{stem}_overlay.png", overlay(image, labels.astype(np.int64), default_palette(k)))
    record = {
        "image": str(args.image),
        "mask": None if args.from_scratch else str(args.mask),
        "oracle": str(args.oracle),
        "quality_metric": oracle.quality,
        "options": {key: v for key, v in options.items() if key != "progress"},
        "classes": {
            str(c): {
                "predicted_quality_before": r.initial_quality,
                "predicted_quality_after": r.final_quality,
                "best_iteration": r.best_iteration,
                "stop_reason": r.stop_reason,
            }
            for c, r in details.items()
        },
    }
    write_json_atomic(out / f"{stem}_refine.json", record)
    for c, r in details.items():
        print(
            f"class {c}: predicted {oracle.quality} {r.initial_quality:.3f} -> {r.final_quality:.3f} "
            f"after {r.best_iteration} steps ({r.stop_reason})"
        )
    print(f"refined mask written to {out / (stem + '.png')}")
    return 0


def _run_local(oracle: Any, image: np.ndarray, args: argparse.Namespace) -> int:
    """Refine with a local (full-resolution) oracle: :func:`~segscope.oracle.local_refine.refine_local`."""
    from segscope.data import default_palette
    from segscope.io import write_json_atomic
    from segscope.oracle.local import one_hot
    from segscope.oracle.local_refine import refine_local
    from segscope.visualize import overlay, write_png

    k, cls = oracle.num_classes, oracle.classes[0]
    if args.from_scratch:
        labels = np.full(image.shape[:2], 1 - cls if k == 2 else 0, np.int64)
        proba = one_hot(labels, k)
    else:
        kind, mask = read_mask(Path(args.mask), k, args.mask_format)
        if mask.shape != image.shape[:2]:
            raise UserError(
                f"{args.mask}: mask size {mask.shape[::-1]} differs from image {image.shape[1::-1]}"
            )
        if kind == "prob" and k != 2:
            raise UserError(f"{args.mask}: a probability map needs an oracle of a binary task")
        proba = one_hot(mask, k) if kind == "labels" else np.stack([1 - mask, mask])[[1 - cls, cls]]
    options = {
        "iterations": 4 if args.iterations is None else args.iterations,
        "step": 0.5 if args.step is None else args.step,
        "update": args.update,
        "prior_weight": args.prior_weight,
    }
    r = refine_local(oracle, image, proba, **options)
    labels = r.labels.astype(np.uint8)
    out, stem = Path(args.out), Path(args.image).stem
    write_png(out / f"{stem}.png", labels)
    write_png(out / f"{stem}_prob.png", (r.proba[cls] * 255).round().astype(np.uint8))
    write_png(
        out / f"{stem}_quality.png", (oracle.quality_map(image, r.proba) * 255).round().astype(np.uint8)
    )
    write_png(out / f"{stem}_overlay.png", overlay(image, labels.astype(np.int64), default_palette(k)))
    record = {
        "image": str(args.image),
        "mask": None if args.from_scratch else str(args.mask),
        "oracle": str(args.oracle),
        "oracle_kind": "local",
        "quality_metric": oracle.quality,
        "options": options,
        "predicted_quality_before": r.estimates[0],
        "predicted_quality_after": r.estimates[-1],
        "estimates": r.estimates,
    }
    write_json_atomic(out / f"{stem}_refine.json", record)
    print(
        f"predicted {oracle.quality} {r.estimates[0]:.3f} -> {r.estimates[-1]:.3f} after "
        f"{options['iterations']} {options['update']} steps; refined mask written to {out / (stem + '.png')}"
    )
    return 0
