"""PLY point clouds: ASCII and binary little-endian, the vertex element's x/y/z and an optional label.

Part of :mod:`segscope.points.io` (re-exported there). Elements before ``vertex`` are skipped when they have
no list properties; a label property is one named ``label``, ``part_label``, ``part``, ``class`` or
``segment``. Errors are one-line :class:`~segscope.errors.DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segscope.errors import DataError
from segscope.io import write_bytes_atomic

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
LABEL_PROPERTIES = ("label", "part_label", "part", "class", "segment")


def _ply_header(
    path: Path, data: bytes
) -> tuple[str, list[tuple[str, int, list[tuple[str, str | None]]]], int]:
    """(format, [(element, count, [(property, numpy type or None for a list)])], offset of the body)."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise DataError(f"{path}: not a PLY file (no 'ply' ... 'end_header' header)")
    body = data.index(b"\n", end) + 1 if b"\n" in data[end:] else len(data)
    fmt, elements = "", []
    for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) >= 3:
            if words[1] == "list":
                elements[-1][2].append((words[-1], None))
            elif words[1] in _PLY_TYPES:
                elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
            else:
                raise DataError(f"{path}: unknown PLY property type {words[1]!r}")
        else:
            raise DataError(f"{path}: malformed PLY header line {line.strip()[:60]!r}")
    if fmt not in ("ascii", "binary_little_endian"):
        raise DataError(f"{path}: PLY format {fmt or '?'!r} not supported (ascii or binary_little_endian)")
    return fmt, elements, body


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``.ply`` file's vertices: (N, 3) float32 x/y/z and, if a vertex has a label property, (N,) int64."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    fmt, elements, body = _ply_header(path, data)
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise DataError(f"{path}: no vertex element")
    before, (_, count, props) = elements[: names.index("vertex")], elements[names.index("vertex")]
    if any(t is None for _, t in props) or any(t is None for e in before for _, t in e[2]):
        raise DataError(f"{path}: list properties before or in the vertex element are not supported")
    fields = [p for p, _ in props]
    if not {"x", "y", "z"} <= set(fields):
        raise DataError(f"{path}: vertex element lacks x/y/z properties")
    label = next((p for p in fields if p.lower() in LABEL_PROPERTIES), None)
    try:
        if fmt == "ascii":
            lines = data[body:].decode("ascii").splitlines()
            skip = sum(e[1] for e in before)
            rows = [ln.split() for ln in lines[skip : skip + count]]
            if len(rows) != count or any(len(r) != len(fields) for r in rows):
                raise ValueError(f"expected {count} vertex lines of {len(fields)} values")
            table = np.array(rows, dtype=np.float64) if count else np.zeros((0, len(fields)))
            column = {p: table[:, i] for i, p in enumerate(fields)}
        else:
            offset = body + sum(e[1] * np.dtype([(p, "<" + t) for p, t in e[2]]).itemsize for e in before)
            dtype = np.dtype([(p, "<" + t) for p, t in props])
            if len(data) < offset + count * dtype.itemsize:
                raise ValueError("file shorter than its header says")
            record = np.frombuffer(data, dtype, count=count, offset=offset)
            column = {p: record[p].astype(np.float64) for p in fields}
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: corrupt PLY vertex data ({str(exc)[:80]})") from None
    points = np.stack([column["x"], column["y"], column["z"]], axis=1).astype(np.float32)
    if count == 0 or not np.isfinite(points).all():
        raise DataError(f"{path}: {'no vertices' if count == 0 else 'non-finite coordinates'}")
    return points, (column[label].astype(np.int64) if label else None)


def write_ply(
    path: str | Path, points: np.ndarray, labels: np.ndarray | None = None, *, binary: bool = True
) -> None:
    """Write x/y/z float vertices (and an int ``label`` property) as binary little-endian or ASCII PLY."""
    points = np.asarray(points, np.float32)
    props = [("x", "f4"), ("y", "f4"), ("z", "f4")] + ([("label", "i4")] if labels is not None else [])
    header = "ply\nformat {} 1.0\nelement vertex {}\n".format(
        "binary_little_endian" if binary else "ascii", len(points)
    )
    header += "".join(f"property {'float' if t == 'f4' else 'int'} {p}\n" for p, t in props) + "end_header\n"
    record = np.zeros(len(points), np.dtype([(p, "<" + t) for p, t in props]))
    record["x"], record["y"], record["z"] = points.T
    if labels is not None:
        record["label"] = np.asarray(labels)
    if binary:
        payload = record.tobytes()
    else:
        rows = (
            " ".join(repr(float(v)) if t == "f4" else str(int(v)) for v, (_, t) in zip(r, props))
            for r in record
        )
        payload = "".join(f"{row}\n" for row in rows).encode("ascii")
    write_bytes_atomic(path, header.encode("ascii") + payload)
