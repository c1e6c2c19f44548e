"""Procedural vehicles with ShapeNet-Part labels: Airplane, Car, Motorbike, Rocket, Skateboard.

x forward (nose, hood, front wheel at +x), y up, z sideways, as in the real ShapeNet-Part files. Labels are
ShapeNet-Part's (1-based, see :data:`segscope.points.io.PART_NAMES`). Arbitrary scale: the generator
normalises every shape to the unit sphere.
"""

from __future__ import annotations

import numpy as np

from segscope.points.shapes_primitives import (
    Surface,
    box,
    cylinder,
    disk,
    ellipsoid,
    frustum,
    plate,
    rot_z,
    torus,
    tube,
)


def airplane(rng: np.random.Generator) -> list[Surface]:
    """1 body (fuselage, nose, tail cone), 2 wings, 3 tail (fin + stabilisers), 4 engines."""
    BODY, WING, TAIL, ENGINE = 1, 2, 3, 4
    length, r = rng.uniform(1.6, 2.2), rng.uniform(0.07, 0.12)
    x_back, x_front = -0.3 * length, 0.33 * length
    s = cylinder((x_back, 0, 0), (x_front, 0, 0), r, BODY, caps=False)
    s.append(ellipsoid((x_front, 0, 0), (rng.uniform(0.08, 0.17) * length, r, r), BODY))
    s += frustum((-0.5 * length, 0.6 * r, 0), (x_back, 0, 0), 0.3 * r, r, BODY, caps=(True, False))
    span, chord = rng.uniform(1.0, 1.5) * length, rng.uniform(0.16, 0.3) * length
    taper, sweep = rng.uniform(0.3, 0.7), rng.uniform(0.0, 0.35) * span / 2
    y_wing, x_wing = rng.choice([-0.6, -0.3, 0.7]) * r, rng.uniform(-0.05, 0.12) * length
    dihedral = rng.uniform(0.0, 0.08) * span / 2
    for side in (1, -1):
        tip_z, tip_y = side * span / 2, y_wing + dihedral
        corners = [
            (x_wing + chord / 2, y_wing, 0),
            (x_wing + chord / 2 - sweep, tip_y, tip_z),
            (x_wing + chord / 2 - sweep - taper * chord, tip_y, tip_z),
            (x_wing - chord / 2, y_wing, 0),
        ]
        s += plate(corners, (0, 1, 0), 0.02 * chord, WING)
        for k in range(int(rng.choice([1, 1, 2]))):  # engines under each wing
            zf = rng.uniform(0.28, 0.45) + 0.3 * k
            ex = x_wing + chord / 2 - sweep * zf + 0.1 * length
            er = rng.uniform(0.3, 0.5) * r
            ey = y_wing + dihedral * zf - er - 0.02 * length
            s += cylinder(
                (ex - 0.16 * length, ey, side * zf * span / 2), (ex, ey, side * zf * span / 2), er, ENGINE
            )
    fin_h, fin_c = rng.uniform(0.13, 0.22) * length, rng.uniform(0.12, 0.2) * length
    xt = -0.5 * length
    s += plate(
        [
            (xt + fin_c, 0.8 * r, 0),
            (xt + 0.3 * fin_c, 0.8 * r + fin_h, 0),
            (xt, 0.8 * r + fin_h, 0),
            (xt, 0.6 * r, 0),
        ],
        (0, 0, 1),
        0.02 * fin_c,
        TAIL,
    )
    stab, y_st = rng.uniform(0.12, 0.22) * span, 0.6 * r + (fin_h if rng.random() < 0.25 else 0)
    for side in (1, -1):
        s += plate(
            [
                (xt + fin_c, y_st, 0),
                (xt + 0.4 * fin_c, y_st, side * stab),
                (xt, y_st, side * stab),
                (xt, y_st, 0),
            ],
            (0, 1, 0),
            0.02 * fin_c,
            TAIL,
        )
    return s


def car(rng: np.random.Generator) -> list[Surface]:
    """1 roof, 2 hood, 3 wheels, 4 body (lower body, cabin sides, trunk)."""
    ROOF, HOOD, WHEEL, BODY = 1, 2, 3, 4
    length, width = rng.uniform(1.8, 2.3), rng.uniform(0.75, 0.95)
    rw, clearance = rng.uniform(0.14, 0.2), rng.uniform(0.08, 0.14)
    h1, h2 = rng.uniform(0.22, 0.32), rng.uniform(0.22, 0.34)
    hood_len, trunk_len = rng.uniform(0.22, 0.32) * length, rng.uniform(0.1, 0.25) * length
    yc = clearance + h1 / 2
    s = box((length / 2 - hood_len / 2, yc, 0), (hood_len, h1, width), BODY, top_label=HOOD)
    s += box((-hood_len / 2, yc, 0), (length - hood_len, h1, width), BODY)
    cabin_len = length - hood_len - trunk_len
    x_cab = -length / 2 + trunk_len + cabin_len / 2
    s += box((x_cab, clearance + h1 + h2 / 2, 0), (cabin_len, h2, 0.9 * width), BODY, top_label=ROOF)
    wheel_w = rng.uniform(0.1, 0.16)
    for x in (length / 2 - rng.uniform(0.15, 0.22) * length, -length / 2 + rng.uniform(0.15, 0.22) * length):
        for side in (1, -1):
            z0 = side * (width / 2 - wheel_w * 0.6)
            s += cylinder((x, rw, z0), (x, rw, z0 + side * wheel_w), rw, WHEEL)
    return s


def motorbike(rng: np.random.Generator) -> list[Surface]:
    """1 gas tank, 2 seat, 3 wheels, 4 handlebar, 5 headlight, 6 frame (engine block, fork, swing arm)."""
    TANK, SEAT, WHEEL, HANDLE, LIGHT, FRAME = 1, 2, 3, 4, 5, 6
    rw, base = rng.uniform(0.28, 0.36), rng.uniform(1.2, 1.5)
    tire = rng.uniform(0.05, 0.09)
    xf, xr = base / 2, -base / 2
    s: list[Surface] = []
    for x in (xf, xr):
        s.append(torus((x, rw, 0), (0, 0, 1), rw - tire, tire, WHEEL))
        s.append(disk((x, rw, 0), (0, 0, 1), rw - tire, WHEEL, inner=0.3 * rw))
    top = rw + rng.uniform(0.45, 0.6)
    s += box((0.05 * base, rw + 0.15, 0), (0.45 * base, 0.3, rng.uniform(0.18, 0.26)), FRAME)
    s += tube([(xr, rw, 0.08), (0.0, rw + 0.2, 0.08)], 0.03, FRAME) + tube(
        [(xr, rw, -0.08), (0.0, rw + 0.2, -0.08)], 0.03, FRAME
    )
    head = (xf - 0.12 * base, top, 0)
    s += tube([(xf, rw, 0.09), (head[0], top, 0.09)], 0.03, FRAME) + tube(
        [(xf, rw, -0.09), (head[0], top, -0.09)], 0.03, FRAME
    )
    s.append(ellipsoid((0.17 * base, top - 0.08, 0), (0.17 * base, 0.1, 0.13), TANK))
    s += box((-0.2 * base, top - 0.15, 0), (0.3 * base, 0.07, 0.2), SEAT)
    bar = rng.uniform(0.25, 0.35)
    s += cylinder((head[0] - 0.05, top + 0.1, -bar), (head[0] - 0.05, top + 0.1, bar), 0.025, HANDLE)
    lr = rng.uniform(0.05, 0.08)
    s += frustum((head[0] + 0.04, top - 0.05, 0), (head[0] + 0.04 + lr, top - 0.05, 0), 0.7 * lr, lr, LIGHT)
    return s


def rocket(rng: np.random.Generator) -> list[Surface]:
    """1 body, 2 fins, 3 nose cone; the nose at +x."""
    BODY, FIN, NOSE = 1, 2, 3
    length, r = rng.uniform(1.4, 2.0), rng.uniform(0.07, 0.13)
    nose = rng.uniform(0.15, 0.3) * length
    x0, x1 = -length / 2, length / 2 - nose
    s = cylinder((x0, 0, 0), (x1, 0, 0), r, BODY, caps=False) + [disk((x0, 0, 0), (1, 0, 0), r, BODY)]
    if rng.random() < 0.5:  # an ogive-like nose: two cones
        mid = x1 + 0.5 * nose
        s += frustum((x1, 0, 0), (mid, 0, 0), r, 0.7 * r, NOSE, caps=(False, False))
        s += frustum((mid, 0, 0), (length / 2, 0, 0), 0.7 * r, 0.0, NOSE, caps=(False, False))
    else:
        s += frustum((x1, 0, 0), (length / 2, 0, 0), r, 0.0, NOSE, caps=(False, False))
    n_fins, fin_len = int(rng.choice([3, 4])), rng.uniform(0.2, 0.4) * length
    span, phase = rng.uniform(1.0, 2.2) * r, rng.uniform(0, np.pi / 2)
    for k in range(n_fins):
        a = phase + 2 * np.pi * k / n_fins
        d = np.array([0, np.cos(a), np.sin(a)])
        corners = [
            (x0 + fin_len, 0, 0) + r * d,
            (x0, 0, 0) + (r + span) * d,
            (x0 - 0.1 * fin_len, 0, 0) + (r + span) * d,
            (x0, 0, 0) + r * d,
        ]
        s += plate(corners, np.cross(d, (1, 0, 0)), 0.01 * length, FIN)
    return s


def skateboard(rng: np.random.Generator) -> list[Surface]:
    """1 wheels, 2 deck (with kicked-up ends), 3 trucks."""
    WHEEL, DECK, TRUCK = 1, 2, 3
    length, width, t = rng.uniform(1.8, 2.2), rng.uniform(0.45, 0.6), 0.03
    flat, kick = rng.uniform(0.7, 0.8) * length, rng.uniform(0.15, 0.3)
    s = box((0, 0, 0), (flat, t, width), DECK)
    end = (length - flat) / 2
    for side in (1, -1):
        s += box(
            (side * (flat / 2 + end / 2), np.sin(kick) * end / 2, 0),
            (end, t, width),
            DECK,
            rot=rot_z(side * kick),
        )
    rw, wheel_w = rng.uniform(0.05, 0.08), rng.uniform(0.06, 0.1)
    axle = rng.uniform(0.6, 0.8) * width / 2
    for x in (1, -1):
        xt = x * rng.uniform(0.28, 0.34) * length
        s += box((xt, -0.06, 0), (0.1, 0.08, 2 * axle * 0.9), TRUCK)
        for side in (1, -1):
            z0 = side * axle
            s += cylinder((xt, -0.08 - rw / 2, z0), (xt, -0.08 - rw / 2, z0 + side * wheel_w), rw, WHEEL)
    return s
