"""User prompts for interactive segmentation: a box, foreground / background points, brush strokes.

A :class:`Prompt` is a plain argument of the methods that can use one (``seg.predict(image,
prompt=Prompt(box=(10, 20, 120, 90)))``); ``segscope segment --box/--fg-points/--bg-points`` and the web
page of ``segscope serve`` build the same object. Coordinates are image pixels, ``x`` (column) first, as
a click reports them: a box is ``(x0, y0, x1, y1)`` with ``x1, y1`` exclusive, a point ``(x, y)``. A brush
stroke is a run of points; each point seeds a disc of ``radius`` pixels.

Which methods read which part is declared by each method's ``prompts`` class attribute (``"box"``,
``"points"``); a prompt a method cannot use is refused with one line rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segscope.errors import UserError

__all__ = ["SEED_BACKGROUND", "SEED_FOREGROUND", "SEED_UNKNOWN", "Prompt", "parse_box", "parse_points"]

SEED_UNKNOWN, SEED_BACKGROUND, SEED_FOREGROUND = 0, 1, 2  # the seed-map codes (random walker's convention)
MAX_POINTS = 20_000  # a brush stroke is sampled points; more than this is a client bug, not a prompt


@dataclass(frozen=True)
class Prompt:
    """A box and/or seed points; ``kinds()`` says which parts are set."""

    box: tuple[int, int, int, int] | None = None
    fg_points: tuple[tuple[int, int], ...] = field(default=())
    bg_points: tuple[tuple[int, int], ...] = field(default=())
    radius: int = 3

    def __post_init__(self) -> None:
        if self.box is not None:
            box = _pixels(self.box, "box")
            if len(box) != 4:
                raise UserError(f"a box is x0,y0,x1,y1, got {self.box!r}")
            object.__setattr__(self, "box", box)
        for name in ("fg_points", "bg_points"):
            pts = tuple(_pixels(p[:2] if hasattr(p, "__getitem__") else p, name) for p in getattr(self, name))
            if any(len(p) != 2 for p in pts):
                raise UserError(f"{name}: a point is x,y, got {getattr(self, name)!r}")
            if len(pts) > MAX_POINTS:
                raise UserError(f"{name}: {len(pts)} points, more than the {MAX_POINTS} allowed")
            object.__setattr__(self, name, pts)
        if not 0 <= int(self.radius) <= 100:
            raise UserError(f"seed radius must be in [0, 100] pixels, got {self.radius}")
        object.__setattr__(self, "radius", int(self.radius))

    # -- what is set ----------------------------------------------------------------------------
    def kinds(self) -> set[str]:
        """``{"box", "points"}`` or a subset: the parts of the prompt that are set."""
        return ({"box"} if self.box is not None else set()) | (
            {"points"} if self.fg_points or self.bg_points else set()
        )

    def __bool__(self) -> bool:
        return bool(self.kinds())

    def check(self, shape: tuple[int, ...], method: str = "prompt") -> None:
        """A one-line :class:`UserError` when the box or a point lies outside an image of ``shape``."""
        h, w = shape[:2]
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
                raise UserError(f"{method}: box {self.box} (x0,y0,x1,y1) is not inside the {w}x{h} image")
        for name in ("fg_points", "bg_points"):
            for x, y in getattr(self, name):
                if not (0 <= x < w and 0 <= y < h):
                    raise UserError(f"{method}: {name[:2]} point ({x}, {y}) is outside the {w}x{h} image")

    # -- rasterised forms the methods use -------------------------------------------------------
    def seed_map(self, shape: tuple[int, ...], *, box_background: bool = True) -> np.ndarray:
        """``(H, W)`` int32 seeds: 2 around foreground points, 1 around background points (drawn last,
        so a background stroke corrects a foreground one) and, with ``box_background``, 1 outside the box;
        0 elsewhere."""
        h, w = shape[:2]
        seeds = np.full((h, w), SEED_UNKNOWN, np.int32)
        if self.box is not None and box_background:
            x0, y0, x1, y1 = self.box
            seeds[:] = SEED_BACKGROUND
            seeds[y0:y1, x0:x1] = SEED_UNKNOWN
        for points, code in ((self.fg_points, SEED_FOREGROUND), (self.bg_points, SEED_BACKGROUND)):
            if points:
                seeds[self._discs(points, h, w)] = code
        return seeds

    def _discs(self, points: Sequence[tuple[int, int]], h: int, w: int) -> np.ndarray:
        marks = np.zeros((h, w), bool)
        xs = np.clip([p[0] for p in points], 0, w - 1)
        ys = np.clip([p[1] for p in points], 0, h - 1)
        marks[ys, xs] = True
        if self.radius == 0:
            return marks
        from scipy import ndimage

        r = self.radius
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        return ndimage.binary_dilation(marks, structure=(yy**2 + xx**2) <= r * r)

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box) if self.box is not None else None,
            "fg_points": [list(p) for p in self.fg_points],
            "bg_points": [list(p) for p in self.bg_points],
            "radius": self.radius,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Prompt | None:
        """A prompt from its JSON form (what the web page posts); ``None`` for an empty one."""
        if not data:
            return None
        unknown = sorted(set(data) - {"box", "fg_points", "bg_points", "radius"})
        if unknown:
            raise UserError(f"prompt: unknown keys {unknown}")
        try:
            prompt = cls(
                box=tuple(data["box"]) if data.get("box") is not None else None,
                fg_points=tuple(tuple(p[:2]) for p in data.get("fg_points") or ()),
                bg_points=tuple(tuple(p[:2]) for p in data.get("bg_points") or ()),
                radius=int(data.get("radius", 3)),
            )
        except (TypeError, ValueError, IndexError) as exc:
            raise UserError(f"prompt: {exc}") from None
        return prompt or None


def _pixels(values: Any, what: str) -> tuple[int, ...]:
    """Finite numbers -> rounded pixel coordinates (a one-line error for anything else)."""
    try:
        return tuple(int(round(float(v))) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{what}: expected finite pixel coordinates, got {values!r}") from None


_NUMBER = r"-?\d+(?:\.\d+)?"


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` -> a box tuple (a one-line error otherwise)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(re.fullmatch(_NUMBER, p) for p in parts):
        raise UserError(f"--box {text!r}: expected four numbers x0,y0,x1,y1")
    return tuple(int(round(float(p))) for p in parts)  # type: ignore[return-value]


def parse_points(text: str, what: str = "--fg-points") -> tuple[tuple[int, int], ...]:
    """``"x,y;x,y"`` (or space-separated pairs) -> point tuples (a one-line error otherwise)."""
    pairs = [p for p in re.split(r"[;\s]+", re.sub(r"\s*,\s*", ",", text.strip())) if p]
    out = []
    for pair in pairs:
        xy = pair.split(",")
        if len(xy) != 2 or not all(re.fullmatch(_NUMBER, v.strip()) for v in xy):
            raise UserError(f"{what} {text!r}: expected x,y pairs separated by ';', e.g. 10,20;30,40")
        out.append((int(round(float(xy[0]))), int(round(float(xy[1])))))
    if not out:
        raise UserError(f"{what}: no points given")
    return tuple(out)
