"""Decision rules of deep segmenters: prior correction, tuned threshold, minimum expected cost, and
their round trip through a saved run and the CLI."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import segscope
from segscope.cli.main import main
from segscope.errors import UserError
from segscope.imbalance.decision import DecisionRule, parse_decision


def test_prior_correction_moves_a_pixel_to_the_rare_class():
    rule = DecisionRule("prior", num_classes=2).fit(np.array([900, 100]))
    # uniform target prior: b_c = log(1/2) - log(pi_c)
    assert rule.bias == pytest.approx([math.log(0.5 / 0.9), math.log(0.5 / 0.1)])
    logits = torch.tensor([[[1.0, 3.0]], [[0.0, 0.0]]])  # (K=2, 1, 2): pixel 0 margin 1, pixel 1 margin 3
    # margin needed for class 0 after correction: log(0.9/0.1) = 2.197 -> pixel 0 flips, pixel 1 does not
    assert rule(logits).tolist() == [[1, 0]]
    assert DecisionRule("argmax", num_classes=2)(logits).tolist() == [[0, 0]]
    half = DecisionRule("prior:tau=0.5", num_classes=2).fit(np.array([900, 100]))
    assert half.bias == pytest.approx(0.5 * rule.bias)


def test_threshold_is_tuned_on_validation_logits():
    # foreground probabilities 0.2, 0.4, 0.6, 0.8 with truth 0, 1, 1, 1: the best F1 threshold is 0.4
    p = np.array([0.2, 0.4, 0.6, 0.8])
    logits = torch.tensor(np.stack([np.zeros(4), np.log(p / (1 - p))]), dtype=torch.float32).view(2, 1, 4)
    rule = DecisionRule("threshold", num_classes=2).fit(
        np.array([1, 1]), [logits], [np.array([[0, 1, 1, 1]])]
    )
    assert 0.2 < rule.threshold <= 0.4
    assert rule(logits).tolist() == [[0, 1, 1, 1]]


def test_cost_matrix_decision():
    probs = torch.tensor([0.7, 0.3]).log().view(2, 1, 1)
    assert DecisionRule("argmax", num_classes=2)(probs).item() == 0
    # missing class 1 costs 5: expected cost of predicting 0 = 0.3 * 5 = 1.5 > predicting 1 = 0.7 * 1
    rule = DecisionRule("cost", num_classes=2, cost_matrix=[[0, 1], [5, 0]])
    assert rule(probs).item() == 1


@pytest.mark.parametrize(
    "spec, message",
    [("magic", "unknown decision"), ("prior:t=1", "bad option"), ("prior:tau=x", "cannot be")],
)
def test_bad_decision_specs(spec, message):
    with pytest.raises(UserError, match=message):
        parse_decision(spec)
    with pytest.raises(UserError, match="binary"):
        DecisionRule("threshold", num_classes=3)
    with pytest.raises(UserError, match="cost matrix"):
        DecisionRule("cost", num_classes=2)


def test_decision_survives_save_and_load(disc_dataset: Path, tmp_path: Path):
    ds = segscope.open_dataset(disc_dataset)
    seg = segscope.create_segmenter(
        "unet",
        num_classes=2,
        in_channels=ds.load_image(0).shape[2],
        base_channels=4,
        depth=2,
        epochs=1,
        batch_size=4,
        augment="none",
        decision="prior",
        sampler="repeat_factor",
        loss="ce+dice",
    )
    seg.fit(ds, progress=False)
    counts = ds.class_pixel_counts() / ds.class_pixel_counts().sum()
    assert seg.decision.bias == pytest.approx(np.log(0.5) - np.log(counts))
    seg.save(tmp_path / "run")
    again = segscope.load(tmp_path / "run")
    assert again.decision.bias == pytest.approx(seg.decision.bias)
    image = ds.load_image(0)
    assert np.array_equal(again.predict(image), seg.predict(image))
    assert np.array_equal(seg.predict(image), seg.predict_proba(image).argmax(0))


def _tiny_unet_train(data: Path, run: Path) -> list[str]:
    """``segscope train`` arguments for a one-epoch, 4-channel U-Net on the disc dataset."""
    return [
        "train",
        "--data",
        str(data),
        "--model",
        "unet",
        "--out",
        str(run),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--augment",
        "none",
        "-o",
        "base_channels=4",
        "-o",
        "depth=2",
        "--quiet",
    ]


def test_cli_train_with_imbalance_flags(disc_dataset: Path, tmp_path: Path):
    run = tmp_path / "run"
    args = _tiny_unet_train(disc_dataset, run)
    args += ["--loss", "ce+dice", "--class-weights", "median_freq", "--sampler", "repeat_factor:t=0.5"]
    args += ["--decision", "prior:tau=0.5"]
    assert main(args) == 0
    meta = json.loads((run / "segmenter.json").read_text())  # typed sections: each option in its place
    assert meta["train"]["sampler"] == "repeat_factor:t=0.5" and "sampler" not in meta["model"]["options"]
    assert meta["decision"]["decision"] == "prior:tau=0.5" and len(meta["decision"]["decision_bias"]) == 2


def test_cli_train_cross_validates_with_per_fold_rows(disc_dataset: Path, tmp_path: Path, capsys):
    out = tmp_path / "cv"
    args = ["train", "--data", str(disc_dataset), "--model", "otsu", "--out", str(out), "--cv", "kfold:2"]
    assert main([*args, "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "fold0" in text and "fold1" in text and "±" in text
    splits = json.loads((out / "splits.json").read_text())
    assert splits["spec"] == "kfold:2" and len(splits["splits"]) == 2
    assert main([*args, "--quiet"]) == 0  # resumed: the finished folds are reused


def test_hybrid_recipe_from_a_yaml_config(disc_dataset: Path, tmp_path: Path):
    """Data, loss and classifier level combined in one config file."""
    config = tmp_path / "hybrid.yaml"
    config.write_text(
        "epochs: 1\nbatch_size: 4\naugment: none\ncrop_size: 24\ncrop_max_ratio: 0.8\n"
        "sampler: repeat_factor\nloss: ce+dice\nclass_weights: enet\ndecision: prior\n"
        "model_options: {base_channels: 4, depth: 2}\n"
    )
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(disc_dataset),
        "--model",
        "unet",
        "--out",
        str(run),
        "--config",
        str(config),
    ]
    assert main([*args, "--quiet"]) == 0
    meta = json.loads((run / "segmenter.json").read_text())
    assert meta["train"]["crop_max_ratio"] == 0.8 and meta["train"]["class_weights"] == "enet"
    assert meta["decision"]["decision"] == "prior" and meta["model"]["options"]["base_channels"] == 4


def test_cost_matrix_serves_loss_and_decision(disc_dataset: Path, tmp_path: Path):
    costs = tmp_path / "costs.json"
    costs.write_text("[[0, 1], [4, 0]]")
    run = tmp_path / "run"
    args = _tiny_unet_train(disc_dataset, run)
    assert main([*args, "--loss", "ce+cost", "--decision", "cost", "--cost-matrix", str(costs)]) == 0
    seg = segscope.load(run)
    assert seg.decision.cost.tolist() == [[0, 1], [4, 0]]
    image = segscope.open_dataset(disc_dataset).load_image(0)
    probs = torch.from_numpy(seg.predict_proba(image))
    expected = (probs[1] * 4 > probs[0] * 1).long().numpy()  # predict 1 where 4 p1 > p0
    assert np.array_equal(seg.predict(image), expected)
