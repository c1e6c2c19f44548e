"""A finite loss with a non-finite gradient stops training like a NaN loss does."""

from pathlib import Path

import pytest
import torch
from torch import nn

from segscope.engine import TrainConfig, Trainer
from segscope.errors import TrainingDiverged
from segscope.losses import build_loss


class _InfGradAfter(torch.autograd.Function):
    """Identity forward; backward passes the gradient through, or inf once ``state['poison']`` is set."""

    @staticmethod
    def forward(ctx, x, state):
        ctx.poison = state["poison"]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return (torch.full_like(grad, float("inf")) if ctx.poison else grad), None


class _TinyNet(nn.Module):
    def __init__(self, state):
        super().__init__()
        self.state = state
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return _InfGradAfter.apply(self.conv(x), self.state)


def _data(n=8, size=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, size, size, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())


@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_inf_gradient_with_finite_loss_stops_training(tmp_path: Path, grad_clip):
    torch.manual_seed(0)
    state = {"poison": False}
    model = _TinyNet(state)
    config = TrainConfig(epochs=3, batch_size=4, lr=1e-2, channels_last=False, grad_clip=grad_clip)
    trainer = Trainer(model, config, loss_fn=build_loss("ce"), run_dir=tmp_path, progress=False)
    trainer.fit(_data())  # clean gradients: the check lets every step through
    assert trainer.epoch == 3
    good = (tmp_path / "last.safetensors").read_bytes()

    state["poison"] = True
    config = TrainConfig(epochs=5, batch_size=4, lr=1e-2, channels_last=False, grad_clip=grad_clip)
    trainer = Trainer(model, config, loss_fn=build_loss("ce"), run_dir=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(_data(), resume=True)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("gradient norm became ")  # the gradient, not the loss, is named
    assert "at epoch 4, step 7 with a finite loss" in message  # 2 steps an epoch, 3 epochs done
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no step taken with inf gradients
    assert (tmp_path / "last.safetensors").read_bytes() == good
