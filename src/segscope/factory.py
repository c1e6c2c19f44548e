"""The one place that creates, lists and loads every method, classical or deep.

* :func:`create_segmenter` builds a Segmenter from a registry name and options. Flat options
  (``epochs=20, base_channels=16, decision="prior", refine_oracle="oracles/q"``) are sorted once, by
  :func:`split_options`, into the run config's sections (:mod:`segscope.run_config`); they are never
  re-joined or re-split later.
* :func:`load` rebuilds a saved run, with its post-processing stages (:mod:`segscope.stages`).
* :func:`create_model` gives a deep model's bare ``nn.Module``; :func:`list_models` the registered names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segscope.errors import UserError
from segscope.registry import REGISTRY, Entry
from segscope.run_config import RunConfig
from segscope.segmenter import Segmenter
from segscope.stages import STAGE_KINDS, StagedSegmenter, build_stage

DECISION_KEYS = ("decision", "cost_matrix", "decision_bias", "decision_threshold")
"""Options of the decision rule (deep models): ``decision`` spec, cost matrix, fitted state."""
INFERENCE_KEYS = {"inference_dtype": "dtype", "inference_compile": "compile"}
"""Options of the inference section (deep models) and their key there."""
STAGE_PREFIX = "refine_"
"""``refine_oracle=DIR`` (+ ``refine_iterations=N``, ...) appends an oracle-refinement stage."""


@dataclass
class Sections:
    """Options sorted by where they belong (see :func:`split_options`)."""

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)


def ensure_registered() -> None:
    """Import the built-in methods and stage kinds (registration happens at import)."""
    import segscope.classical  # noqa: F401
    import segscope.classical.stage  # noqa: F401
    import segscope.crf.stage  # noqa: F401
    import segscope.models  # noqa: F401
    import segscope.oracle.stage  # noqa: F401


def split_options(entry: Entry, options: dict[str, Any]) -> Sections:
    """Sort flat options into sections.

    Every method: ``refine_*`` options make an oracle stage, ``crf`` (``true`` or a mapping of
    :func:`~segscope.crf.dense_crf` options) a dense-CRF stage after it. Deep models:
    :class:`TrainConfig` fields go to ``train``, :data:`DECISION_KEYS` to ``decision``,
    ``inference_dtype`` to ``inference``, ``postprocess`` makes a morphology stage, everything else
    goes to the model builder. Classical methods take everything else as their own options (their
    ``postprocess`` is tuned with them). Keys ``model``/``train``/``stages`` holding a mapping (list
    for stages), and ``decision`` holding a mapping, are taken as whole sections (a YAML config
    written in sections).
    """
    from segscope.engine.config import TrainConfig

    out = Sections()
    flat = dict(options)
    for key in ("model", "train", "decision"):
        if isinstance(flat.get(key), dict):
            getattr(out, key).update(flat.pop(key))
    if isinstance(flat.get("stages"), list):
        out.stages.extend(dict(s) for s in flat.pop("stages"))
    refine = {k.removeprefix(STAGE_PREFIX): flat.pop(k) for k in list(flat) if k.startswith(STAGE_PREFIX)}
    if refine:
        if "oracle" not in refine:
            raise UserError(f"options {sorted(options)}: refine_* options need refine_oracle=ORACLE_DIR")
        out.stages.append({"kind": "oracle", "oracle_dir": str(refine.pop("oracle")), **refine})
    crf = flat.pop("crf", None)
    if crf is not None and crf is not False:
        if crf is not True and not isinstance(crf, dict):
            raise UserError(f"option crf={crf!r}: expected true or a mapping of CRF options")
        out.stages.insert(_score_stages_end(out.stages), {"kind": "crf", **({} if crf is True else crf)})
    if entry.family != "deep":
        out.model.update(flat)
        return out
    train_keys = TrainConfig.field_names()
    for key, value in flat.items():
        if key in train_keys:
            out.train[key] = value
        elif key in DECISION_KEYS:
            out.decision[key] = value
        elif key in INFERENCE_KEYS:
            out.inference[INFERENCE_KEYS[key]] = value
        elif key == "postprocess":
            out.stages.insert(_score_stages_end(out.stages), {"kind": "postprocess", "steps": value})
        else:
            out.model[key] = value
    return out


def _score_stages_end(stages: list[dict[str, Any]]) -> int:
    """Index after the last score stage (oracle, crf): label-map stages go after it, a crf stage too."""
    ensure_registered()
    score = [getattr(STAGE_KINDS.get(s.get("kind")), "uses_proba", False) for s in stages]
    ends = [i + 1 for i, uses_proba in enumerate(score) if uses_proba]
    return max(ends, default=0)


def list_models(*, family: str | None = None, task: str | None = None, ndim: int | None = None) -> list[str]:
    """Names of every registered method, optionally filtered by family, task and dimensionality."""
    ensure_registered()
    return REGISTRY.names(family=family, task=task, ndim=ndim)


def get_entry(name: str) -> Entry:
    """The registry entry of ``name`` (built-ins registered first); one line naming close matches."""
    ensure_registered()
    return REGISTRY.get(name)


def create_model(name: str, num_classes: int = 2, *, in_channels: int = 3, **options: Any) -> Any:
    """A deep model's bare ``nn.Module`` (a classical name gives its Segmenter) built with ``options``."""
    entry = get_entry(name)
    if entry.family == "deep":
        from segscope.models.segmenter import build_network

        return build_network(name, num_classes, in_channels, options)
    return create_segmenter(name, num_classes, in_channels=in_channels, **options)


def create_segmenter(
    name: str, num_classes: int = 2, *, in_channels: int = 3, ndim: int = 2, **options: Any
) -> Segmenter:
    """A ready-to-fit Segmenter for registry name ``name``, its stages included.

    ``options`` are flat (sorted by :func:`split_options`); deep models take training options
    (``epochs``, ``lr``, ``crop_size``, ...), builder options (``base_channels``, ``pretrained``), a
    decision rule and ``inference_dtype``; classical methods their own options. ``ndim`` is the data's:
    on volumes (3) a 2-D method is wrapped to run slice by slice
    (:class:`~segscope.slice_wise.SliceWiseSegmenter`); a 3-D method on images is refused.
    """
    entry = get_entry(name)
    if entry.ndim == 3 and ndim == 2:
        raise UserError(f"{name} is a 3-D method; the data is 2-D (open a volume dataset: --format volume)")
    sections = split_options(entry, options)
    base = entry.segmenter.create(entry, int(num_classes), int(in_channels), sections)
    staged = with_stages(base, sections.stages)
    if ndim == 3 and entry.ndim == 2:
        from segscope.slice_wise import SliceWiseSegmenter

        return SliceWiseSegmenter(staged)
    return staged


def with_stages(base: Segmenter, stages: list[dict[str, Any]]) -> Segmenter:
    """``base`` followed by the stages described by ``stages`` (``base`` itself when there are none)."""
    if not stages:
        return base
    return StagedSegmenter(base, [build_stage(s) for s in stages])


def load(run_dir: str | Path) -> Segmenter:
    """Reopen what ``segscope train`` (or ``Segmenter.save``) wrote to ``run_dir``, stages included."""
    config = RunConfig.read(run_dir)
    entry = get_entry(config.name)
    base = entry.segmenter.from_config(config, Path(run_dir))
    staged = with_stages(base, config.stages)
    if config.method.get("slice_wise"):
        from segscope.slice_wise import SliceWiseSegmenter

        return SliceWiseSegmenter(staged)
    return staged
