"""``segscope serve``: a local web page over the Segmenter API to segment, compare and refine an image.

The page (plain HTML/JS in ``static/``, no build step, nothing loaded from elsewhere) talks to a small
FastAPI app (:func:`~segscope.serve.app.create_app`). Every result comes from the same code the CLI runs:
:func:`segscope.load` for trained runs, :func:`segscope.create_segmenter` for classical methods, a
:class:`~segscope.prompts.Prompt` for boxes and seeds, :func:`segscope.oracle.refine_mask` for refinement.
Needs the ``web`` extra (``pip install 'segscope[web]'``).
"""

from segscope.serve.app import create_app
from segscope.serve.catalogue import MethodCatalogue

__all__ = ["MethodCatalogue", "create_app"]
