"""Data-parallel training across processes: ``torchrun --nproc_per_node N -m segscope train ...``.

The :class:`~segscope.engine.Trainer` calls :func:`setup` when it is built. Under ``torchrun`` (``WORLD_SIZE``
> 1 in the environment) that starts the process group - gloo on CPU, NCCL on CUDA with one GPU per local
rank - unless the caller already did; otherwise every function here is a no-op and training is the
single-process loop. What changes with N processes:

* the batch size stays the **global** batch: each rank takes its ``batch_size / N`` slice of every global
  batch drawn by the same sampler (:class:`GlobalBatchShard`), so the images of a step are those of the
  single-process run with the same seed, whatever the sampler (uniform or repeat-factor). torch's
  ``DistributedSampler`` shards one uniform permutation by stride and cannot wrap another sampler, which
  is why segscope shards batches instead;
* gradients are averaged by ``DistributedDataParallel``; the mean of the ranks' mean losses is the mean
  loss of the global batch when every image has the same number of labelled pixels, so a step equals the
  single-process step up to float summation order (``tests/engine/test_distributed.py``). BatchNorm
  statistics are per rank (DDP's default; torch's SyncBatchNorm runs on GPUs only), so networks with
  BatchNorm match only approximately;
* random augmentation and dropout draw from a per-rank seed, so they differ from the single-process
  draws (equally distributed, not equal);
* the time budget and the learning-rate progress use the slowest rank's clock (one all-reduce per batch),
  validation is sharded over the ranks and its confusion matrix all-reduced, the early-stopping state is
  broadcast from rank 0, and only rank 0 writes checkpoints and logs; ``--resume`` reads them on every
  rank (a file system all ranks see).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from segscope.errors import UserError


def launched() -> bool:
    """``True`` when started by torchrun (or any launcher setting ``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Start the process group when launched and not started yet; return the device this rank uses."""
    if not launched() and not active():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    """Destroy the process group (the end of ``segscope train`` under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def _tensor(values: list[float]) -> torch.Tensor:
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    return torch.tensor(values, dtype=torch.float64, device=device)


def all_reduce(values: list[float], op: str = "sum") -> list[float]:
    """Sum (or ``max``) of ``values`` over the ranks; ``values`` unchanged in one process."""
    if not active():
        return list(values)
    t = _tensor(values)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.cpu().tolist()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` over the parameters that need gradients now; ``model`` alone in
    one process. Call again after changing ``requires_grad`` (a frozen encoder thawing)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


class GlobalBatchShard(torch.utils.data.Sampler):
    """Rank ``rank``'s slice of every complete global batch of ``base`` (``global_batch`` indices).

    An incomplete last global batch is dropped on every rank, so all ranks make the same number of
    steps (a partial batch on some ranks only would hang the gradient all-reduce).
    """

    def __init__(self, base: torch.utils.data.Sampler, global_batch: int, rank: int, world: int) -> None:
        if global_batch % world:
            raise UserError(f"batch size {global_batch} is not divisible by the {world} processes")
        self.base, self.global_batch, self.rank, self.world = base, global_batch, rank, world
        self.local = global_batch // world
        if len(base) < global_batch:
            raise UserError(
                f"{len(base)} samples per epoch is fewer than the global batch of {global_batch} "
                f"({world} processes x {self.local})"
            )

    def __len__(self) -> int:
        return len(self.base) // self.global_batch * self.local

    def __iter__(self) -> Iterator[int]:
        batch: list[int] = []
        lo = self.rank * self.local
        for index in self.base:
            batch.append(int(index))
            if len(batch) == self.global_batch:
                yield from batch[lo : lo + self.local]
                batch = []
