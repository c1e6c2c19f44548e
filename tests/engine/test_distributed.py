"""Data-parallel training: two gloo processes under torchrun equal one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from segscope.engine.distributed import GlobalBatchShard
from segscope.errors import UserError

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_shards_are_the_rank_slices_of_each_global_batch():
    base = [7, 3, 9, 0, 5, 1, 8, 2, 6, 4, 11]  # 11 indices: two global batches of 4, 3 left over
    shards = [list(GlobalBatchShard(base, 4, r, 2)) for r in range(2)]
    assert shards == [[7, 3, 5, 1], [9, 0, 8, 2]]  # per step: rank 0 takes [0:2], rank 1 [2:4]
    assert [len(GlobalBatchShard(base, 4, r, 2)) for r in range(2)] == [4, 4]
    with pytest.raises(UserError, match="not divisible by the 3 processes"):
        GlobalBatchShard(base, 4, 0, 3)
    with pytest.raises(UserError, match="fewer than the global batch of 16"):
        GlobalBatchShard(base, 16, 0, 2)


def _train(out: Path, processes: int, *extra: str) -> tuple[dict, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    result = subprocess.run(
        [*launcher, str(WORKER), str(out), *extra], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return load_file(str(out / "final.safetensors")), json.loads((out / "history.json").read_text())


@pytest.mark.parametrize("extra", [(), ("--freeze",)], ids=["plain", "frozen-encoder-first-epoch"])
def test_two_gloo_processes_equal_one_process(tmp_path, extra):
    one, h1 = _train(tmp_path / "one", 1, *extra)
    two, h2 = _train(tmp_path / "two", 2, *extra)
    assert h1["world"] == 1 and h2["world"] == 2
    # 3 epochs x 4 AdamW steps: the gradients differ only by float summation order (mean of the two ranks'
    # mean losses vs one mean over the global batch), which AdamW's normalisation carries to ~1e-7.
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)
    for a, b in zip(h1["history"], h2["history"], strict=True):
        assert a["step"] == b["step"] == 4 * a["epoch"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        # validation sharded over the ranks (3 + 2 of the 5 images), confusion matrices all-reduced
        assert a["val_mean_iou"] == pytest.approx(b["val_mean_iou"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
    # rank 0 alone wrote the checkpoints: the same files as the single process
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == names
    assert "last_state.pt" in names and "best.safetensors" in names


def test_torchrun_cli_trains_once_on_rank_zero_and_resumes(disc_dataset, tmp_path):
    """The README's launch line: ``torchrun ... -m segscope train``; one run directory, written by rank 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    run = tmp_path / "run"

    def train(epochs: int, *extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        command += ["-m", "segscope", "train", "--data", str(disc_dataset), "--model", "unet"]
        command += ["--out", str(run), "--epochs", str(epochs), "--batch-size", "4", "--augment", "none"]
        command += ["-o", "base_channels=4", "-o", "depth=2", "--quiet", *extra]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    first = train(1)
    assert first.stdout.count("on 2 processes") == 1, first.stdout  # rank 1 prints nothing
    for name in ("segmenter.json", "best.safetensors", "last_state.pt", "log.csv", "metrics.json"):
        assert (run / name).is_file(), name
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2  # header + epoch 1
    train(2, "--resume")
    assert len((run / "log.csv").read_text().strip().splitlines()) == 3  # epoch 2 appended, not restarted
