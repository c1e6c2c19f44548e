"""Procedural hand-held objects with ShapeNet-Part labels: Earphone, Guitar, Knife, Pistol.

Orientations follow the real ShapeNet-Part files: a guitar and a knife stand along y (head and blade up)
and are thin along x (guitar) or z (knife); headphones have the band up and the cups at +/-z; a pistol
points its barrel along +x with the grip down at -x.
"""

from __future__ import annotations

import numpy as np

from segscope.points.shapes_primitives import Surface, box, cylinder, plate, rot_z, torus, tube


def earphone(rng: np.random.Generator) -> list[Surface]:
    """Headphones: 1 earcups, 2 headband (an arc in the y-z plane), 3 connectors (band end to cup)."""
    CUP, BAND, CONNECTOR = 1, 2, 3
    radius, band_r = rng.uniform(0.42, 0.6), rng.uniform(0.025, 0.05)
    end = rng.uniform(0.0, 0.35)  # the band's ends, below the centre by this angle
    s = [
        torus(
            (0, 0, 0), (1, 0, 0), radius, band_r, BAND, arc=(-end, np.pi + end), axes=((0, 0, 1), (0, 1, 0))
        )
    ]
    cup_r, cup_t, drop = rng.uniform(0.22, 0.35), rng.uniform(0.1, 0.2), rng.uniform(0.04, 0.12)
    y_end = -radius * np.sin(end)
    for side in (1, -1):
        z = side * radius * np.cos(end)
        s += tube([(0, y_end, z), (0, y_end - drop, z)], 0.03, CONNECTOR)
        y_cup = y_end - drop - cup_r
        s += cylinder((0, y_cup, z - side * cup_t / 2), (0, y_cup, z + side * cup_t / 2), cup_r, CUP)
    return s


def guitar(rng: np.random.Generator) -> list[Surface]:
    """1 head (top), 2 neck, 3 body (two bouts; thin along x, wide along z)."""
    HEAD, NECK, BODY = 1, 2, 3
    lower, thick = rng.uniform(0.3, 0.42), rng.uniform(0.07, 0.14)
    upper, waist = lower * rng.uniform(0.65, 0.85), rng.uniform(0.9, 1.2)
    y_low = 0.0
    s = cylinder((-thick / 2, y_low, 0), (thick / 2, y_low, 0), lower, BODY)
    y_up = y_low + waist * lower
    s += cylinder((-thick / 2, y_up, 0), (thick / 2, y_up, 0), upper, BODY)
    neck_y0, neck_len = y_up + 0.8 * upper, rng.uniform(0.7, 1.0)
    neck_w = rng.uniform(0.07, 0.1)
    s += box((0, neck_y0 + neck_len / 2, 0), (0.05, neck_len, neck_w), NECK)
    head_len = rng.uniform(0.2, 0.3)
    s += box(
        (-0.01, neck_y0 + neck_len + head_len / 2, 0), (0.04, head_len, neck_w * rng.uniform(1.3, 1.9)), HEAD
    )
    return s


def knife(rng: np.random.Generator) -> list[Surface]:
    """1 blade (up, a tapered plate in the x-y plane; its cross guard too, as in the sample), 2 handle."""
    BLADE, HANDLE = 1, 2
    blade_len, blade_w = rng.uniform(0.9, 1.3), rng.uniform(0.08, 0.25)
    handle_len, handle_w = rng.uniform(0.45, 0.65), rng.uniform(0.07, 0.12)
    back = rng.uniform(0.0, 0.6)  # where the spine is: 0 centred (dagger), 1 straight back (kitchen knife)
    x_spine, x_edge = -blade_w / 2, blade_w / 2
    tip = (x_spine + (1 - back) * blade_w / 2, blade_len, 0)
    corners = [
        (x_spine, 0, 0),
        (x_edge, 0, 0),
        (x_edge, blade_len * rng.uniform(0.55, 0.8), 0),
        tip,
        (x_spine, blade_len * (0.95 if back > 0.3 else 0.6), 0),
    ]
    s = plate(corners, (0, 0, 1), rng.uniform(0.01, 0.03), BLADE)
    s += box((0, -handle_len / 2, 0), (handle_w, handle_len, rng.uniform(0.04, 0.07)), HANDLE)
    if rng.random() < 0.5:
        s += box((0, -0.02, 0), (blade_w + rng.uniform(0.08, 0.25), 0.04, 0.08), BLADE)
    return s


def pistol(rng: np.random.Generator) -> list[Surface]:
    """1 barrel (slide along x, muzzle at +x), 2 grip (down at -x, raked back), 3 trigger (and its guard)."""
    BARREL, GRIP, TRIGGER = 1, 2, 3
    length, height, width = rng.uniform(0.8, 1.0), rng.uniform(0.14, 0.2), rng.uniform(0.06, 0.09)
    s = box((0, height / 2, 0), (length, height, width), BARREL)
    s += cylinder(
        (length / 2, 0.6 * height, 0), (length / 2 + rng.uniform(0.0, 0.12), 0.6 * height, 0), 0.04, BARREL
    )
    grip_len, grip_w, rake = rng.uniform(0.3, 0.45), rng.uniform(0.14, 0.2), rng.uniform(0.05, 0.3)
    gx = -length / 2 + grip_w / 2 + rng.uniform(0.0, 0.08)
    center = (gx - np.sin(rake) * grip_len / 2, -np.cos(rake) * grip_len / 2 + 0.02, 0)
    s += box(center, (grip_w, grip_len, width * 0.95), GRIP, rot=rot_z(rake))
    tx, guard = gx + grip_w / 2 + 0.08, rng.uniform(0.06, 0.09)
    s.append(
        torus(
            (tx, 0, 0), (0, 0, 1), guard, 0.012, TRIGGER, arc=(np.pi, 2 * np.pi), axes=((1, 0, 0), (0, 1, 0))
        )
    )
    s += box((tx - 0.01, -0.03, 0), (0.025, 0.06, 0.02), TRIGGER)
    return s
