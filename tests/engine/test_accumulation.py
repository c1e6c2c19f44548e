"""Gradient accumulation: ``batch_size=b, accumulate=k`` must take the step of one ``b*k`` batch.

The trainer backpropagates ``loss / accumulate`` for each of the ``k`` micro-batches, so with a plain mean
loss over equally sized micro-batches the summed gradient is the mean over all ``b*k`` samples. (With an
``ignore_index`` the per-batch means weigh pixels differently and the equality only holds approximately;
that is not tested here.) The model has no BatchNorm / dropout, so a micro-batch's forward does not depend
on the other samples.
"""

import torch
from torch import nn

from segscope.engine import TrainConfig, Trainer


def _dataset(n=8, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    y = torch.randint(0, 3, (n, size, size), generator=g)
    return torch.utils.data.TensorDataset(x, y)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))


LR, MOMENTUM = 0.5, 0.9


def _train(batch_size, accumulate, dataset):
    config = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        accumulate=accumulate,
        samples_per_epoch=len(dataset),
        optimizer="sgd",
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=0.0,
        schedule="constant",
        device="cpu",
        channels_last=False,
        seed=3,
    )
    trainer = Trainer(_model(), config, loss_fn=nn.CrossEntropyLoss(), progress=False)
    trainer.fit(dataset)
    return trainer


def _order(dataset, seed=3):
    # the trainer's sampler: RandomSampler on a generator seeded with seed * 100_003 + epoch
    g = torch.Generator().manual_seed(seed * 100_003)
    return list(torch.utils.data.RandomSampler(dataset, num_samples=len(dataset), generator=g))


def test_accumulated_step_equals_one_big_batch_step():
    data = _dataset()
    big = _train(8, 1, data)
    accumulated = _train(4, 2, data)
    assert big.step == accumulated.step == 1
    for (name, a), b in zip(big.model.state_dict().items(), accumulated.model.state_dict().values()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)

    # independent reference: the gradient of the mean loss over all 8 samples, and SGD's first
    # Nesterov step p - lr * (g + momentum * g) (the momentum buffer starts at g)
    model = _model()
    x, y = data.tensors
    nn.CrossEntropyLoss()(model(x), y).backward()
    for (name, p), q in zip(model.named_parameters(), accumulated.model.parameters()):
        expected = p.detach() - LR * (1 + MOMENTUM) * p.grad
        torch.testing.assert_close(q.detach(), expected, atol=1e-6, rtol=0, msg=name)

    # the check is sensitive: an accumulation that did not divide by ``accumulate`` (or a step on one
    # micro-batch only) lands far from the big-batch step
    half = _train(4, 1, data)  # two steps of 4: not the same update
    diff = max((a - b).abs().max().item() for a, b in zip(big.model.parameters(), half.model.parameters()))
    assert diff > 1e-3


def test_accumulation_over_several_steps_matches_the_larger_batch():
    data = _dataset(n=8)
    assert len(set(_order(data))) == 8  # every sample once, in a shuffled order both runs share
    big = _train(4, 1, data)
    accumulated = _train(2, 2, data)
    assert big.step == accumulated.step == 2
    for a, b in zip(big.model.parameters(), accumulated.model.parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
