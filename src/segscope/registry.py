"""Name -> method registry for every segscope method, classical or deep.

An :class:`Entry` pairs a *builder* with the :class:`~segscope.segmenter.Segmenter` class that runs it; the
entry's ``family``, ``task`` and ``ndim`` are that class's attributes, never repeated at registration:

* a classical method registers its Segmenter subclass itself (``@register("otsu", paper=...)`` on the
  class);
* a deep model registers an ``nn.Module`` builder ``builder(num_classes=, in_channels=, **options)`` with
  the adapter class that trains and runs it (:func:`segscope.models.register_model` passes
  :class:`~segscope.models.segmenter.DeepSegmenter`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from segscope.errors import UserError
from segscope.segmenter import Segmenter
from segscope.types import TASKS

FAMILIES = ("classical", "deep")


@dataclass(frozen=True)
class Entry:
    """One registered method: ``builder`` run by ``segmenter`` (a Segmenter subclass)."""

    name: str
    builder: Callable[..., Any]
    segmenter: type[Segmenter]
    paper: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.segmenter.family

    @property
    def task(self) -> str:
        return self.segmenter.task

    @property
    def ndim(self) -> int:
        return self.segmenter.ndim

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
        segmenter: type[Segmenter] | None = None,
        paper: str = "",
        **defaults: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``builder`` under ``name``; ``defaults`` are bound keyword options.

        ``segmenter`` is the class that runs the builder; leave it out when the builder is a Segmenter
        subclass itself.
        """

        def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
            runner = segmenter
            if runner is None and isinstance(builder, type) and issubclass(builder, Segmenter):
                runner = builder
            if runner is None:
                raise TypeError(
                    f"method {name!r}: register a Segmenter subclass, or pass segmenter= (deep models: "
                    "segscope.models.register_model)"
                )
            self.add(Entry(name, builder, runner, paper, dict(defaults)))
            return builder

        return decorate

    def add(self, entry: Entry) -> None:
        """Add a ready-made entry (a bench worker re-registering a script's methods)."""
        if entry.name in self._entries:
            raise ValueError(f"method {entry.name!r} is already registered")
        if entry.family not in FAMILIES or entry.task not in TASKS or entry.ndim not in (2, 3):
            raise ValueError(
                f"method {entry.name!r}: {entry.segmenter.__name__} declares family={entry.family!r}, "
                f"task={entry.task!r}, ndim={entry.ndim!r}; expected one of {FAMILIES}, {TASKS}, 2 or 3"
            )
        self._entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `segscope models`"
            raise UnknownMethodError(f"unknown method {name!r}{hint}") from None

    def names(
        self, *, family: str | None = None, task: str | None = None, ndim: int | None = None
    ) -> list[str]:
        return sorted(
            n
            for n, e in self._entries.items()
            if (family is None or e.family == family)
            and (task is None or e.task == task)
            and (ndim is None or e.ndim == ndim)
        )

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


REGISTRY = Registry()
register = REGISTRY.register
