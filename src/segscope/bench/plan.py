"""What a bench runs: the plan (data, methods, protocol, budgets) and which methods apply to the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segscope.errors import UserError
from segscope.metrics.specs import per_image_metrics

# Chosen for a first look at a new dataset: fast classical baselines plus one small deep model.
DEFAULT_BINARY = ("otsu", "watershed", "slic", "graphcut", "unet")
DEFAULT_MULTICLASS = ("slic", "alpha_expansion", "unet")
# Fields that define the protocol: a resumed bench must keep them, or its cells would not be comparable.
PROTOCOL_FIELDS = (
    "data",
    "format",
    "cv",
    "split",
    "seed",
    "holdout",
    "time_budget_s",
    "spacing",
    "blocks",
    "oracle",
    "oracle_budget_s",
    "oracle_options",
)
# Protocol fields added later: a bench saved before them ran with these values. The oracle's budget and
# options only matter when it is on.
PROTOCOL_DEFAULTS: dict[str, Any] = {"oracle": None, "oracle_budget_s": 120.0, "oracle_options": {}}
ORACLE_ONLY_FIELDS = ("oracle_budget_s", "oracle_options")


@dataclass
class BenchPlan:
    """What to run: dataset, methods, validation scheme and budgets (saved as ``BENCH_DIR/bench.json``).

    Parameters
    ----------
    data : dataset folder (any layout :func:`segscope.data.open_dataset` reads).
    methods : registered method names (see :func:`expand_methods` for ``default``, ``all-classical``...).
    cv : cross-validation spec (see :func:`segscope.engine.validation.make_splits`); ignored with ``split``.
    split : ``"TRAIN/TEST"``: fit on one of the dataset's own splits, test on another (one fold).
    format : dataset layout, ``"auto"`` to detect.
    time_budget_s : fit budget per method and fold, in seconds.
    options : per-method options, ``{"unet": {"base_channels": 16}}``.
    holdout : fraction of each training part carved out (seeded, the same for every method) as the
        validation set passed to ``fit``; 0 passes none.
    gallery : number of test images shown for every method in the report.
    workers : processes for classical cells; 0 means one per core.
    threads : torch threads for deep cells (run one at a time); 0 means one per core.
    seed : seed of the splits and of the hold-out.
    command : the command line, for the report.
    primary : the metric that ranks methods and is compared in the paired tests (default: pixel_error
        on binary data, mean_iou otherwise).
    max_splits : cap on the number of splits for ``loo`` and ``lpo``.
    spacing : volumes (``format="volume"``): ``(z, y, x)`` voxel spacing overriding the files'.
    blocks : volumes: contiguous z-blocks per volume, the samples that ``cv`` splits (``kfold:K`` over K
        blocks of one volume tests one block per fold).
    oracle : ``None`` (off), or the kind of quality oracle (``"local"``, ``"global"``, see
        :func:`segscope.oracle.quality.fit_oracle`) trained once per fold on its training part only; every
        test image then gets each method's label-free predicted quality, a per-image method choice
        (``oracle-select``) and a flag list.
    oracle_budget_s : training budget of each fold's oracle, in seconds.
    oracle_options : more keyword arguments of :func:`~segscope.oracle.quality.fit_oracle`.
    """

    data: str
    methods: list[str]
    cv: str | None = "kfold:5"
    split: str | None = None
    format: str = "auto"
    time_budget_s: float = 600.0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    holdout: float = 0.0
    gallery: int = 4
    workers: int = 0
    threads: int = 0
    seed: int = 0
    command: str = ""
    primary: str | None = None
    max_splits: int = 50
    spacing: list[float] | None = None
    blocks: int | None = None
    oracle: str | None = None
    oracle_budget_s: float = 120.0
    oracle_options: dict[str, Any] = field(default_factory=dict)

    @property
    def open_options(self) -> dict[str, Any]:
        """The volume options of :func:`segscope.data.open_dataset` (none for 2-D data)."""
        return {k: v for k, v in (("spacing", self.spacing), ("blocks", self.blocks)) if v is not None}

    def validate(self) -> None:
        """Raise :class:`UserError` with one line for an option no bench can run with."""
        if not self.methods:
            raise UserError("--methods: no method to run")
        if len(set(self.methods)) != len(self.methods):
            raise UserError(f"--methods: a method is listed twice ({', '.join(self.methods)})")
        if not 0 <= self.holdout < 1:
            raise UserError(f"--holdout must be in [0, 1), got {self.holdout}")
        if self.time_budget_s <= 0:
            raise UserError(f"--time-budget-per-method must be positive, got {self.time_budget_s}")
        if self.gallery < 0 or self.workers < 0 or self.threads < 0:
            raise UserError("--gallery, --workers and --threads must not be negative")
        choices = per_image_metrics()  # the paired tests compare per-image values
        if self.primary is not None and self.primary not in choices:
            raise UserError(f"--primary {self.primary}: choose one of {', '.join(choices)}")
        from segscope.oracle.quality import ORACLE_KINDS  # lazily: the oracle package imports torch

        if self.oracle is not None and self.oracle not in ORACLE_KINDS:
            raise UserError(f"--oracle must be one of {', '.join(ORACLE_KINDS)}, got {self.oracle!r}")
        if self.oracle_budget_s <= 0:
            raise UserError(f"--oracle-budget must be positive, got {self.oracle_budget_s}")
        unknown = sorted(set(self.options) - set(self.methods))
        if unknown:
            raise UserError(f"--option for {', '.join(unknown)}, which is not among --methods")


def default_methods(num_classes: int) -> list[str]:
    """A sensible default comparison for binary or multi-class data (registered names only)."""
    from segscope.factory import list_models

    wanted = DEFAULT_BINARY if num_classes == 2 else DEFAULT_MULTICLASS
    available = set(list_models())
    return [m for m in wanted if m in available]


def expand_methods(spec: str, num_classes: int) -> list[str]:
    """Method names from ``--methods``: a comma-separated list, ``default``, ``all-semantic``,
    ``all-instance`` or ``all-classical``; an unknown name raises with the close matches."""
    from segscope.factory import get_entry, list_models

    spec = spec.strip()
    if spec in ("", "default"):
        return default_methods(num_classes)
    if spec == "all-semantic":
        return sorted(list_models(task="semantic") + list_models(task="binary"))
    if spec == "all-instance":
        return list_models(task="instance")
    if spec == "all-classical":
        return list_models(family="classical")
    names = [m.strip() for m in spec.split(",") if m.strip()]
    for name in names:
        get_entry(name)  # raises UnknownMethodError naming the close matches
    return list(dict.fromkeys(names))


def not_applicable(method: str, num_classes: int, data_task: str = "semantic", ndim: int = 2) -> str | None:
    """``None`` if ``method`` can run on the data (``num_classes`` classes; ``data_task`` ``"instance"``
    when it has instance masks; ``ndim`` 3 for volumes), else why it is skipped. Semantic and binary
    methods run on instance data too (scored on its foreground map); instance methods need instance
    masks; on volumes 2-D methods run slice by slice, and 3-D methods need volumes."""
    from segscope.factory import get_entry

    entry = get_entry(method)
    if entry.ndim == 3 and ndim == 2:
        return f"{method} is a 3-D method; the dataset holds 2-D images (a volume layout: --format volume)"
    if ndim == 3 and entry.task == "instance":
        return f"{method} is a 2-D instance method; volumes are scored as 3-D label maps"
    if entry.task == "binary" and num_classes != 2:
        return f"{method} is a binary (foreground/background) method; the dataset has {num_classes} classes"
    if entry.task == "instance" and data_task != "instance":
        return f"{method} is an instance method; the dataset has no instance masks (images/ + instances/)"
    return None


def check_protocol(saved: dict[str, Any], plan: BenchPlan, where: str) -> None:
    """Refuse to resume a bench whose protocol (data, splits, seed, hold-out, budget, oracle) has changed."""
    saved = {**PROTOCOL_DEFAULTS, **saved}
    for name in PROTOCOL_FIELDS:
        if name in ORACLE_ONLY_FIELDS and saved["oracle"] is None and plan.oracle is None:
            continue
        if name in saved and saved[name] != getattr(plan, name):
            raise UserError(
                f"{where}: this bench was run with {name}={saved[name]!r}, not {getattr(plan, name)!r}; "
                "keep the protocol to resume it, or use a new --out"
            )
