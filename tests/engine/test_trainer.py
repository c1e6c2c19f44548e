from pathlib import Path

import pytest
import torch

from segscope.engine import TrainConfig, Trainer
from segscope.engine.checkpoint import load_weights
from segscope.engine.trainer import lr_factor
from segscope.errors import TrainingDiverged, UserError
from segscope.losses import build_loss
from segscope.models.semantic.unet import UNet


def _data(n=12, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    y = (x[:, 0] > 0.3).long()
    return torch.utils.data.TensorDataset(x, y)


def _trainer(run_dir, epochs, **cfg):
    torch.manual_seed(0)
    model = UNet(2, 1, base_channels=4, depth=2)
    config = TrainConfig(**{"epochs": epochs, "batch_size": 4, "lr": 3e-3, "channels_last": False, **cfg})
    return Trainer(model, config, loss_fn=build_loss("ce"), run_dir=run_dir, progress=False)


def test_resume_is_bit_for_bit(tmp_path: Path):
    straight = _trainer(tmp_path / "a", 4)
    straight.fit(_data())
    interrupted = _trainer(tmp_path / "b", 4)
    calls = {"n": 0}

    def crash_in_epoch_3(out, y):  # 3 steps per epoch: the 7th call is epoch 3's first step
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return build_loss("ce")(out, y)

    interrupted.loss_fn = crash_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(_data())
    resumed = _trainer(tmp_path / "b", 4)
    resumed.fit(_data(), resume=True)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    # and the checkpoint on disk holds the same weights
    model = UNet(2, 1, base_channels=4, depth=2)
    assert load_weights(tmp_path / "b" / "last.safetensors", model) == 4
    assert torch.equal(model.head.weight, straight.model.head.weight)


def test_training_reduces_loss_and_logs(tmp_path: Path):
    trainer = _trainer(tmp_path, 6, lr=2e-2, schedule="constant")
    history = trainer.fit(_data())
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("epoch,step,train_loss")
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 6
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path: Path):
    trainer = _trainer(tmp_path, 2)
    trainer.fit(_data())
    good = (tmp_path / "last.safetensors").read_bytes()
    calls = {"n": 0}

    def poisoned(out, y):
        calls["n"] += 1
        return build_loss("ce")(out, y) * (float("nan") if calls["n"] > 2 else 1.0)

    trainer2 = _trainer(tmp_path, 4)
    trainer2.loss_fn = poisoned
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 3"):
        trainer2.fit(_data(), resume=True)
    assert (tmp_path / "last.safetensors").read_bytes() == good


def test_early_stopping_and_best_checkpoint(tmp_path: Path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.4, 0.9])
    trainer = _trainer(tmp_path, 6, early_stopping_patience=2)
    trainer.evaluate_fn = lambda model: {"mean_iou": next(scores)}
    history = trainer.fit(_data())
    assert len(history) == 4 and trainer.stop_reason.startswith("early stopping")
    import json

    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 2


def test_time_budget_stops_training(tmp_path: Path):
    trainer = _trainer(tmp_path, 1000, time_budget_s=0.5)
    history = trainer.fit(_data())
    assert trainer.stop_reason == "time budget" and len(history) < 1000


def test_schedules():
    cfg = TrainConfig(schedule="poly", poly_power=1.0)
    assert lr_factor(0.0, cfg) == 1.0 and lr_factor(0.25, cfg) == pytest.approx(0.75)
    one = TrainConfig(schedule="onecycle")
    assert lr_factor(0.05, one) == pytest.approx(0.5) and lr_factor(1.0, one) == pytest.approx(0.0)


def test_config_yaml_round_trip_and_errors(tmp_path: Path):
    cfg = TrainConfig(epochs=3, crop_size="64x96", loss="ce+dice")
    assert cfg.crop_size == (64, 96)
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert TrainConfig.from_yaml(path) == cfg
    path.write_text("epochz: 3\n")
    with pytest.raises(UserError, match="unknown training options \\['epochz'\\]"):
        TrainConfig.from_yaml(path)
