"""Trains a tiny BatchNorm-free network with :class:`segscope.engine.Trainer`; run alone or under torchrun.

    python ddp_worker.py OUT_DIR [--freeze]              # one process
    torchrun --standalone --nproc_per_node 2 ddp_worker.py OUT_DIR   # two processes, gloo

Rank 0 (or the single process) writes ``OUT_DIR/final.safetensors`` and ``OUT_DIR/history.json`` beside the
trainer's own checkpoints. Used by ``test_distributed.py``; not collected by pytest.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from segscope.engine import TrainConfig, Trainer, distributed
from segscope.engine.validation import semantic_validation


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def data(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 16, 16, generator=g)
    masks = (images[:, 0] * 2.99).long()  # learnable from the first channel
    return list(zip(images, masks, strict=True))


def main() -> None:
    out = Path(sys.argv[1])
    freeze = "--freeze" in sys.argv
    torch.manual_seed(0)
    model = Tiny()
    config = TrainConfig(
        epochs=3,
        batch_size=4,
        lr=1e-2,
        device="cpu",
        augment="none",
        freeze_encoder_epochs=1 if freeze else 0,
    )
    loss = nn.CrossEntropyLoss()
    evaluate = semantic_validation(data(5, 1), 3, loss, ignore_index=255)
    trainer = Trainer(model, config, loss_fn=loss, evaluate_fn=evaluate, run_dir=out, progress=False)
    history = trainer.fit(data(18, 0))
    if distributed.is_main():
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "final.safetensors"))
        (out / "history.json").write_text(json.dumps({"history": history, "world": distributed.world_size()}))
    distributed.shutdown()


if __name__ == "__main__":
    main()
