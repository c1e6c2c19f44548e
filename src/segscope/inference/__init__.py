"""Fast inference: conv-BN folding, channels-last memory format and bf16 autocast on CPU."""

from segscope.inference.optimize import InferenceModel, fold_batchnorm

__all__ = ["InferenceModel", "fold_batchnorm"]
