"""One contract for every registered method, classical and deep: registering a method is what covers it.

Every method: fit on a tiny set, predict the output type of its ``task`` (a :data:`LabelMap` of valid
class indices at the image's size, or :class:`Instances`), save -> :func:`segscope.load` -> identical
predictions. Every deep model also: forward and backward at a small size, every parameter gets a
finite gradient, no NaN, and an odd-sized input is either handled (logits at the input's size) or
refused with one clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segscope
from segscope.data import open_dataset
from segscope.errors import UserError
from segscope.factory import create_model, create_segmenter, get_entry, list_models
from segscope.models.segmenter import training_loss
from segscope.types import Instances
from tests.conftest import make_disc_images, write_folder_dataset, write_volume_dataset

# Fast settings for the sweep (fewer tuning trials; one short epoch for deep models).
CLASSICAL_FAST = {"max_trials": 2, "tune_images": 2, "learn_images": 2}
DEEP_FAST = {"epochs": 1, "batch_size": 2, "samples_per_epoch": 2, "augment": "none", "device": "cpu"}
HEAVY = 20_000_000  # parameters above which a model is swept at its smallest input only
SIZE = 64  # fit and prediction size: every architecture's pooling accepts it
SIZE_3D = (16, 24, 24)  # a volume model's forward size (D, H, W)
DEEP_FAST_3D = {**DEEP_FAST, "patch_size": [8, 16, 16]}


def spatial(name: str, odd: bool = False) -> tuple[int, ...]:
    """The sweep's input size for ``name``'s dimensionality (``odd``: not a multiple of any pooling)."""
    if get_entry(name).ndim == 3:
        return tuple(s + o for s, o in zip(SIZE_3D, (3, 5, 1))) if odd else SIZE_3D
    return (SIZE + 5, SIZE + 3) if odd else (SIZE, SIZE)


def write_instance_dataset(root: Path, n: int = 4, size: int = SIZE) -> Path:
    """An instance layout (images/ + instances/): two bright discs per image, ids 1 and 2."""
    (root / "images").mkdir(parents=True)
    (root / "instances").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        ids = np.zeros((size, size), np.uint8)
        for k, cx in enumerate((size // 4, 3 * size // 4), start=1):
            cy = int(rng.integers(size // 3, 2 * size // 3))
            ids[(yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 7) ** 2] = k
        image = (50 + 150 * (ids > 0) + rng.normal(0, 8, ids.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(np.stack([image] * 3, -1)).save(root / "images" / f"img{i}.png")
        Image.fromarray(ids).save(root / "instances" / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def binary_data(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("contract") / "discs", n=4, size=SIZE)


@pytest.fixture(scope="module")
def instance_data(tmp_path_factory) -> Path:
    return write_instance_dataset(tmp_path_factory.mktemp("contract") / "leaves")


def check_output(seg, output, image: np.ndarray) -> None:
    """The output type of ``seg.task`` at ``image``'s (or volume's) size."""
    if seg.task == "instance":
        assert isinstance(output, Instances), f"{seg.name}: instance methods return Instances"
        assert output.spatial_shape == image.shape[:2]
        assert output.masks.dtype == np.bool_ and output.boxes.shape == (len(output), 4)
        return
    assert isinstance(output, np.ndarray) and output.dtype == np.int64, f"{seg.name}: {type(output)}"
    assert output.shape == image.shape[: seg.ndim]
    assert output.min() >= 0 and output.max() < seg.num_classes


def same_output(a, b) -> bool:
    if isinstance(a, Instances):
        return bool(np.array_equal(a.masks, b.masks) and np.array_equal(a.labels, b.labels))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("name", list_models(family="classical"))
def test_classical_method_fits_predicts_and_round_trips(name, binary_data, instance_data, tmp_path):
    entry = get_entry(name)
    root = instance_data if entry.task == "instance" else binary_data
    train = open_dataset(root)
    options = {k: v for k, v in CLASSICAL_FAST.items() if _accepts(name, k)}
    seg = create_segmenter(name, num_classes=train.num_classes, in_channels=3, **options)
    seg.fit(train, progress=False, time_budget_s=30)
    image = train.load_image(0)
    output = seg.predict(image)
    check_output(seg, output, image)
    seg.save(tmp_path / "run")
    again = segscope.load(tmp_path / "run")
    assert type(again) is type(seg) and again.task == entry.task
    assert same_output(again.predict(image), output), f"{name}: predictions changed after save/load"


def _accepts(name: str, option: str) -> bool:
    try:
        create_segmenter(name, num_classes=2, **{option: CLASSICAL_FAST[option]})
        return True
    except UserError:
        return False


def deep_models() -> list[str]:
    return list_models(family="deep")


@pytest.mark.parametrize("name", deep_models())
def test_deep_model_forward_backward_every_parameter_gets_a_finite_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_channels=3).train()
    size = spatial(name)
    x = torch.randn(2, 3, *size)
    out = model(x)
    out = out[0] if isinstance(out, tuple | list) else out
    assert out.shape == (2, 3, *size), f"{name}: logits {tuple(out.shape)} for a {size} input"
    assert torch.isfinite(out).all()
    target = torch.randint(0, 3, (2, *size))
    training_loss(model, torch.nn.functional.cross_entropy)(out, target).backward()  # deep supervision too
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"{name}: parameters without gradient: {no_grad[:5]}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradients in {bad[:5]}"


@pytest.mark.parametrize("name", deep_models())
def test_deep_model_handles_or_refuses_an_odd_input_size(name):
    model = create_model(name, num_classes=2, in_channels=3).eval()
    x = torch.randn(1, 3, *spatial(name, odd=True))
    try:
        with torch.no_grad():
            out = model(x)
    except (ValueError, UserError) as exc:  # refused: one line that names the size problem
        message = str(exc)
        assert "\n" not in message and any(w in message for w in ("size", "divisible", "multiple")), message
        return
    out = out[0] if isinstance(out, tuple | list) else out
    assert out.shape[2:] == x.shape[2:], f"{name}: odd input {tuple(x.shape[2:])} -> {tuple(out.shape[2:])}"


@pytest.fixture(scope="module")
def volume_data(tmp_path_factory) -> Path:
    return write_volume_dataset(tmp_path_factory.mktemp("contract") / "balls", n=4, shape=(16, 24, 24))


@pytest.mark.parametrize("name", deep_models())
def test_deep_model_fits_predicts_and_round_trips(name, binary_data, volume_data, tmp_path):
    volumes = get_entry(name).ndim == 3
    fast = DEEP_FAST_3D if volumes else DEEP_FAST
    if _parameters(name) > HEAVY:
        if not volumes:
            pytest.skip(
                f"{name}: over {HEAVY:,} parameters; forward/backward covered above, fit covered by U-Net"
            )
        fast = {**fast, "base_channels": 4}  # the paper's 19 M parameters swept above; fit a narrow one
    train = open_dataset(volume_data if volumes else binary_data)
    seg = create_segmenter(name, num_classes=2, in_channels=1, ndim=3 if volumes else 2, **fast)
    seg.fit(train.subset([0, 1]), train.subset([2]), out_dir=tmp_path / "run", progress=False)
    image = train.load_image(3)
    output = seg.predict(image)
    check_output(seg, output, image)
    weights = sorted(p.name for p in (tmp_path / "run").glob("*.safetensors"))
    assert weights == ["best.safetensors", "last.safetensors"], f"one file per checkpoint, got {weights}"
    again = segscope.load(tmp_path / "run")
    assert np.array_equal(again.predict(image), output), f"{name}: predictions changed after save/load"


def _parameters(name: str) -> int:
    with torch.device("meta"):  # counted without allocating (or initialising) the weights
        return sum(p.numel() for p in create_model(name, num_classes=2, in_channels=1).parameters())


def test_the_sweep_covers_every_registered_method():
    """A method registered anywhere is swept: the parametrisations read the registry itself."""
    assert set(list_models()) == set(list_models(family="classical")) | set(deep_models())
    assert len(make_disc_images(1)) == 1
