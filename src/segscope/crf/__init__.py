"""Fully connected CRF post-processing (Krähenbühl & Koltun, NIPS 2011): :func:`dense_crf`, its NumPy
:class:`PermutohedralLattice` backend, and the ``crf`` stage :class:`CRFStage`."""

from segscope.crf.dense_crf import dense_crf
from segscope.crf.permutohedral import PermutohedralLattice
from segscope.crf.stage import CRFStage

__all__ = ["CRFStage", "PermutohedralLattice", "dense_crf"]
