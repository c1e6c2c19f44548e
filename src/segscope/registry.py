"""Name -> builder registry for every segscope method, classical or deep.

One registry holds every method so that ``list_models``, the CLI and ``bench`` see them all.
An entry records its *family* (``"classical"`` or ``"deep"``) and *task* (``"semantic"``,
``"binary"`` or ``"instance"``):

* a deep entry's builder returns a :class:`torch.nn.Module` mapping ``(N, C_in, H, W)`` images to
  ``(N, num_classes, H, W)`` logits and takes ``num_classes`` and ``in_channels`` keywords;
* a classical entry's builder returns a :class:`segscope.segmenter.Segmenter`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from segscope.errors import UserError

FAMILIES = ("classical", "deep")
TASKS = ("semantic", "binary", "instance")


@dataclass(frozen=True)
class Entry:
    """One registered method."""

    name: str
    builder: Callable[..., Any]
    family: str
    task: str
    paper: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        doc = (self.builder.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""


class UnknownMethodError(UserError, KeyError):
    """Raised for a method name nobody registered; the message lists the close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class Registry:
    """A tiny name -> :class:`Entry` map that refuses duplicates."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        family: str,
        task: str = "semantic",
        paper: str = "",
        **defaults: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``builder`` under ``name``; ``defaults`` are bound keyword options."""
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")

        def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"method {name!r} is already registered")
            self._entries[name] = Entry(name, builder, family, task, paper, dict(defaults))
            return builder

        return decorate

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `segscope models`"
            raise UnknownMethodError(f"unknown method {name!r}{hint}") from None

    def names(self, *, family: str | None = None, task: str | None = None) -> list[str]:
        return sorted(
            n
            for n, e in self._entries.items()
            if (family is None or e.family == family) and (task is None or e.task == task)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


REGISTRY = Registry()
register = REGISTRY.register
