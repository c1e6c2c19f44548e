"""The factory: options sorted once into the run config's sections, predictors rebuilt from `model` +
`stages`, stages reloaded, one weights file per checkpoint, bad options as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import segscope
from segscope.cli.main import main
from segscope.data import open_dataset
from segscope.errors import UserError
from segscope.factory import create_segmenter, get_entry, split_options
from segscope.run_config import RunConfig
from segscope.stages import StagedSegmenter
from tests.conftest import write_folder_dataset

TINY = {"base_channels": 4, "depth": 2, "epochs": 1, "batch_size": 2, "augment": "none"}


def test_flat_options_are_sorted_into_sections_once():
    sections = split_options(
        get_entry("unet_small"),
        {
            "epochs": 3,
            "lr": 0.01,
            "base_channels": 8,
            "pretrained": None,
            "decision": "prior:tau=0.5",
            "inference_dtype": "bfloat16",
            "postprocess": ["opening"],
            "refine_oracle": "oracles/q",
            "refine_iterations": 5,
        },
    )
    assert sections.train == {"epochs": 3, "lr": 0.01}
    assert sections.model == {"base_channels": 8, "pretrained": None}
    assert sections.decision == {"decision": "prior:tau=0.5"}
    assert sections.inference == {"dtype": "bfloat16"}
    assert sections.stages == [  # score stages before label-map stages
        {"kind": "oracle", "oracle_dir": "oracles/q", "iterations": 5},
        {"kind": "postprocess", "steps": ["opening"]},
    ]
    classical = split_options(get_entry("otsu"), {"sigma": 1.0, "postprocess": ["opening"]})
    assert classical.model == {"sigma": 1.0, "postprocess": ["opening"]} and not classical.stages


def test_a_builders_value_error_is_one_line_naming_the_model(tmp_path: Path, capsys):
    with pytest.raises(UserError, match="model 'unet_small': bad option \\(depth must be >= 1, got 0\\)"):
        create_segmenter("unet_small", num_classes=2, in_channels=1, depth=0)
    with pytest.raises(UserError, match="unexpected keyword argument 'no_such_option'"):
        create_segmenter("unet_small", num_classes=2, in_channels=1, no_such_option=1)
    data = write_folder_dataset(tmp_path / "d", n=4)
    code = main(
        ["train", "--data", str(data), "--model", "unet_small", "-o", "depth=0", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "depth must be >= 1" in err[0] and "Traceback" not in err[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("factory")
    data = write_folder_dataset(root / "d", n=6)
    ds = open_dataset(data)
    seg = create_segmenter("unet_small", num_classes=2, in_channels=1, postprocess=["opening"], **TINY)
    seg.fit(ds.subset([0, 1, 2, 3]), ds.subset([4, 5]), out_dir=root / "run", progress=False)
    return data, root / "run"


def test_the_run_config_has_typed_sections_and_one_weights_file_per_checkpoint(trained_run):
    _, run = trained_run
    data = json.loads((run / "segmenter.json").read_text())
    assert data["format"] == 2 and set(data) >= {"method", "model", "train", "decision", "stages"}
    assert data["method"] == {"name": "unet_small", "family": "deep", "task": "semantic", "ndim": 2}
    assert data["model"]["options"] == {"base_channels": 4, "depth": 2}
    assert data["train"]["epochs"] == 1 and "base_channels" not in data["train"]
    assert data["stages"] == [{"kind": "postprocess", "steps": ["opening"], "foreground": 1}]
    assert data["model"]["weights"] == "best.safetensors"
    assert sorted(p.name for p in run.glob("*.safetensors")) == ["best.safetensors", "last.safetensors"]


def test_load_rebuilds_the_stages_and_the_same_predictions(trained_run):
    data, run = trained_run
    seg = segscope.load(run)
    assert isinstance(seg, StagedSegmenter) and seg.name == "unet_small+postprocess"
    image = open_dataset(data).load_image(0)
    raw = seg.base.predict(image)
    from segscope.classical.morphology import postprocess

    np.testing.assert_array_equal(
        seg.predict(image), postprocess(raw, ["opening"], foreground=1, background=0)
    )


def test_a_predictor_needs_only_method_model_decision_and_stages(trained_run, tmp_path: Path):
    data, run = trained_run
    config = RunConfig.read(run)
    config.train, config.history = {}, []  # the training record is not needed to predict
    (tmp_path / "p").mkdir()
    config.write(tmp_path / "p")
    (tmp_path / "p" / "best.safetensors").write_bytes((run / "best.safetensors").read_bytes())
    image = open_dataset(data).load_image(1)
    np.testing.assert_array_equal(
        segscope.load(tmp_path / "p").predict(image), segscope.load(run).predict(image)
    )


def test_an_old_or_broken_run_config_is_one_line(tmp_path: Path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "segmenter.json").write_text(json.dumps({"name": "otsu", "options": {}}))
    with pytest.raises(UserError, match="older segscope.*retrain"):
        segscope.load(tmp_path / "old")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "segmenter.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt run config"):
        segscope.load(tmp_path / "bad")
    with pytest.raises(UserError, match="not a segscope run"):
        segscope.load(tmp_path)
