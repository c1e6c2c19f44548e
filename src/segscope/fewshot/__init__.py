"""Few-shot segmentation: class folds and episodes (PASCAL-5i protocol), a frozen ImageNet backbone,
PANet prototypes, siamese matching, the fine-tuning baseline, episodic training and evaluation."""

from segscope.fewshot.episodes import (
    CAMVID_CLASSES,
    CAMVID_FOLDS,
    ClassFolds,
    Episode,
    EpisodeData,
    EpisodeSampler,
    class_pixel_counts,
    load_episodes,
    save_episodes,
)
from segscope.fewshot.experiment import evaluate_fewshot, train_fewshot
from segscope.fewshot.features import FeatureBank, FrozenFeatures
from segscope.fewshot.heads import PrototypeHead, RelationHead, finetune_logits
from segscope.fewshot.pooling import cosine_scores, masked_average_pooling
from segscope.fewshot.run import FewShotPredictor
from segscope.fewshot.scores import EpisodeScores

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_FOLDS",
    "ClassFolds",
    "Episode",
    "EpisodeData",
    "EpisodeSampler",
    "EpisodeScores",
    "FeatureBank",
    "FewShotPredictor",
    "FrozenFeatures",
    "PrototypeHead",
    "RelationHead",
    "class_pixel_counts",
    "cosine_scores",
    "evaluate_fewshot",
    "finetune_logits",
    "load_episodes",
    "masked_average_pooling",
    "save_episodes",
    "train_fewshot",
]
