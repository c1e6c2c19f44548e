"""Transfer learning: encoder freezing (BatchNorm kept in eval), discriminative learning rates, sampler
hook, and encoder weights taken from another segscope run."""

from pathlib import Path

import pytest
import torch

from segscope.engine import TrainConfig, Trainer
from segscope.engine.checkpoint import save_weights
from segscope.errors import UserError
from segscope.losses import build_loss
from segscope.models.semantic.unet import UNet
from segscope.models.semantic.unet_resnet import EncoderUNet
from segscope.run_config import RunConfig


def _data(n=8, size=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())


def _model():
    torch.manual_seed(0)
    return EncoderUNet(2, 3, encoder="resnet18", decoder_channels=(16, 8, 8, 8, 8))


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_frozen_encoder_keeps_weights_and_batchnorm_statistics():
    model = _model()
    enc0, dec0 = _snapshot(model.encoder), _snapshot(model.decoder)
    cfg = TrainConfig(epochs=1, batch_size=4, freeze_encoder_epochs=1, channels_last=False)
    trainer = Trainer(model, cfg, loss_fn=build_loss("ce"), progress=False)
    history = trainer.fit(_data())
    assert _changed(enc0, model.encoder) == set()  # weights and running_mean / running_var untouched
    assert _changed(dec0, model.decoder)  # the decoder learned
    assert history[0]["encoder_frozen"] is True


def test_encoder_unfreezes_after_n_epochs():
    model = _model()
    enc0 = _snapshot(model.encoder)
    cfg = TrainConfig(epochs=2, batch_size=4, freeze_encoder_epochs=1, channels_last=False)
    history = Trainer(model, cfg, loss_fn=build_loss("ce"), progress=False).fit(_data())
    assert [r["encoder_frozen"] for r in history] == [True, False]
    changed = _changed(enc0, model.encoder)
    assert "conv1.weight" in changed and "bn1.running_mean" in changed


def test_discriminative_learning_rates():
    model = _model()
    cfg = TrainConfig(epochs=1, lr=1e-2, encoder_lr_scale=0.1, schedule="constant", channels_last=False)
    trainer = Trainer(model, cfg, loss_fn=build_loss("ce"), progress=False)
    encoder_group, rest = trainer.optimizer.param_groups
    assert encoder_group["lr"] == pytest.approx(1e-3) and rest["lr"] == pytest.approx(1e-2)
    n_encoder = sum(p.numel() for p in model.encoder.parameters())
    assert sum(p.numel() for p in encoder_group["params"]) == n_encoder
    assert sum(p.numel() for g in (encoder_group, rest) for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )


def test_freezing_needs_an_encoder():
    cfg = TrainConfig(epochs=1, freeze_encoder_epochs=2)
    with pytest.raises(UserError, match="no .encoder"):
        Trainer(UNet(2, 1, base_channels=4, depth=2), cfg, loss_fn=build_loss("ce"), progress=False)


def test_sampler_factory_replaces_shuffling():
    seen: list[int] = []
    data = _data()

    class Recording(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            seen.append(i)
            return data[i]

    def only_image_3(num_samples, generator):
        assert isinstance(generator, torch.Generator)
        return [3] * num_samples

    cfg = TrainConfig(epochs=1, batch_size=4, channels_last=False)
    model = UNet(2, 3, base_channels=4, depth=2)
    Trainer(model, cfg, loss_fn=build_loss("ce"), progress=False).fit(
        Recording(), sampler_factory=only_image_3
    )
    assert seen == [3] * len(data)


def test_encoder_weights_from_another_run_adapt_to_grey(tmp_path: Path):
    source = _model()  # an RGB model "trained" elsewhere
    save_weights(tmp_path / "best.safetensors", source, epoch=1)
    RunConfig(method={"name": "unet_resnet18"}, model={"weights": "best.safetensors"}).write(tmp_path)
    target = EncoderUNet(2, 1, encoder="resnet18", decoder_channels=(16, 8, 8, 8, 8), pretrained=tmp_path)
    rgb = source.encoder.conv1.weight
    assert torch.allclose(target.encoder.conv1.weight, rgb.sum(1, keepdim=True))  # grey = sum over RGB
    assert torch.equal(target.encoder.layer4[1].conv2.weight, source.encoder.layer4[1].conv2.weight)
    assert torch.equal(target.encoder.bn1.running_var, source.encoder.bn1.running_var)
