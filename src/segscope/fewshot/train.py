"""Episodic training and evaluation of the few-shot heads on cached features.

One optimiser step is one training episode (seen classes only, unseen pixels ignored or their images
excluded: see :mod:`segscope.fewshot.episodes`). Every ``eval_every`` steps the head is scored on a fixed
list of *selection* episodes, drawn from training images held out of the episodes it learns from and
from seen classes only, and the best state is kept. The unseen classes and the test split are never
looked at while training.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from segscope.fewshot.episodes import Episode, EpisodeSampler
from segscope.fewshot.features import FeatureBank
from segscope.fewshot.heads import FewShotHead, finetune_logits
from segscope.fewshot.scores import EpisodeScores

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def episode_tensors(
    bank: FeatureBank, sampler: EpisodeSampler, episode: Episode, *, rng: np.random.Generator | None = None
) -> Tensors:
    """``(support_feats, support_masks, query_feats, query_labels)`` of ``episode`` from ``bank``, the
    labels built by the sampler's own table (so training and test follow one protocol); with ``rng``
    each image is flipped horizontally with probability 1/2 (needs a bank built with ``flip=True``)."""

    def view(index: int) -> tuple[torch.Tensor, np.ndarray]:
        flipped = bool(rng is not None and bank.flip and rng.random() < 0.5)
        return bank.features(index, flipped=flipped), bank.mask(index, flipped=flipped)

    sf, sm = [], []
    for c, indices in zip(episode.classes, episode.support, strict=True):
        table = sampler.label_table([c])
        pairs = [view(i) for i in indices]
        sf.append(torch.stack([f for f, _ in pairs]))
        sm.append(torch.from_numpy(np.stack([table[m] for _, m in pairs])))
    table = sampler.label_table(episode.classes)
    pairs = [view(i) for i in episode.query]
    qf = torch.stack([f for f, _ in pairs])
    ql = torch.from_numpy(np.stack([table[m] for _, m in pairs]))
    return torch.stack(sf), torch.stack(sm), qf, ql


Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def head_predictor(head: FewShotHead) -> Predictor:
    head.eval()
    return head.predict


def finetune_predictor(**options) -> Predictor:
    def predict(sf, sm, qf):
        return finetune_logits(sf, sm, qf, **options).argmax(1)

    return predict


def evaluate_episodes(
    predictors: dict[str, Predictor],
    bank: FeatureBank,
    sampler: EpisodeSampler,
    episodes: Sequence[Episode],
    *,
    progress: bool = False,
    desc: str = "episodes",
    examples: list | None = None,
    keep: int = 0,
) -> dict[str, dict]:
    """Score each predictor on ``episodes`` (:class:`EpisodeScores` summaries, plus seconds per episode);
    the first ``keep`` episodes' predictions are appended to ``examples`` as ``(episode, {name: labels})``."""
    scores = {name: EpisodeScores(tuple(sampler.folds.classes)) for name in predictors}
    seconds = dict.fromkeys(predictors, 0.0)
    for n, episode in enumerate(tqdm(episodes, desc=desc, disable=not progress, leave=False)):
        sf, sm, qf, ql = episode_tensors(bank, sampler, episode)
        kept = {}
        for name, predict in predictors.items():
            start = time.perf_counter()
            with torch.no_grad():
                pred = predict(sf, sm, qf)
            seconds[name] += time.perf_counter() - start
            for p, t in zip(pred.numpy(), ql.numpy()):
                scores[name].update(p, t, episode.classes)
            kept[name] = pred.numpy()
        if examples is not None and n < keep:
            examples.append((episode, kept))
    n = max(len(episodes), 1)
    return {name: {**s.summary(), "seconds_per_episode": seconds[name] / n} for name, s in scores.items()}


@dataclass
class TrainResult:
    steps: int
    seconds: float
    best_step: int
    best_selection_miou: float
    history: list[dict] = field(default_factory=list)


def train_head(
    head: FewShotHead,
    bank: FeatureBank,
    sampler: EpisodeSampler,
    *,
    selection: tuple[FeatureBank, EpisodeSampler, Sequence[Episode]] | None = None,
    time_budget_s: float | None = None,
    max_steps: int = 100_000,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    eval_every: int = 200,
    seed: int = 0,
    progress: bool = False,
) -> TrainResult:
    """Train ``head`` on ``sampler``'s episodes until ``time_budget_s`` or ``max_steps``; keep the state
    with the best selection mIoU (the last state without ``selection``)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    start = time.perf_counter()
    deadline = start + (time_budget_s if time_budget_s else float("inf"))
    best_state, best, best_step, history, losses = None, -1.0, 0, [], []
    bar = tqdm(
        total=max_steps if not time_budget_s else None, desc=f"train {head.method}", disable=not progress
    )
    step = 0
    while step < max_steps and time.perf_counter() < deadline:
        head.train()
        sf, sm, qf, ql = episode_tensors(bank, sampler, sampler.sample(rng), rng=rng)
        opt.zero_grad()
        loss = head.loss(sf, sm, qf, ql)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        bar.update(1)
        last = step >= max_steps or time.perf_counter() >= deadline
        if selection is not None and (step % eval_every == 0 or last):
            sel_bank, sel_sampler, sel_episodes = selection
            score = evaluate_episodes({"head": head_predictor(head)}, sel_bank, sel_sampler, sel_episodes)
            miou = score["head"]["mean_iou"]
            mean_loss = float(np.mean(losses[-eval_every:]))
            seconds = round(time.perf_counter() - start, 1)
            history.append({"step": step, "loss": mean_loss, "selection_miou": miou, "seconds": seconds})
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", sel_miou=f"{miou:.3f}")
            if miou > best:
                best, best_step, best_state = miou, step, copy.deepcopy(head.state_dict())
    bar.close()
    if best_state is not None:
        head.load_state_dict(best_state)
    else:
        best_step = step
    head.eval()
    return TrainResult(step, time.perf_counter() - start, best_step, best, history)
