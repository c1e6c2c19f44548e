"""Inference: conv-BN folding, channels-last and bf16 autocast on CPU; overlap-tile and N-D
sliding-window prediction."""

from segscope.inference.optimize import InferenceModel, fold_batchnorm
from segscope.inference.sliding_window import sliding_window
from segscope.inference.tiling import overlap_tile, predict_logits

__all__ = ["InferenceModel", "fold_batchnorm", "overlap_tile", "predict_logits", "sliding_window"]
