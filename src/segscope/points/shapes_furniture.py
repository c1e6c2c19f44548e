"""Procedural furniture and household objects with ShapeNet-Part labels: Bag, Cap, Chair, Lamp, Laptop,
Mug, Table.

x forward (a chair faces +x: its back is at -x; a mug's handle and a cap's peak at +x), y up, z sideways, as
in the real ShapeNet-Part files. Arbitrary scale: the generator normalises every shape to the unit sphere.
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
    rot_z,
    torus,
    tube,
)


def bag(rng: np.random.Generator) -> list[Surface]:
    """1 handle(s) on top, 2 body (thin along x, wide along z)."""
    HANDLE, BODY = 1, 2
    width, height, depth = rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.3)
    s = box((0, 0, 0), (depth, height, width), BODY)
    radius, tube_r = rng.uniform(0.15, 0.35) * width, rng.uniform(0.012, 0.025)
    xs = (0.0,) if rng.random() < 0.5 else (depth / 3, -depth / 3)
    for x in xs:
        s.append(
            torus(
                (x, height / 2, 0),
                (1, 0, 0),
                radius,
                tube_r,
                HANDLE,
                arc=(0, np.pi),
                axes=((0, 0, 1), (0, 1, 0)),
            )
        )
    return s


def cap(rng: np.random.Generator) -> list[Surface]:
    """1 panels (the crown, a half ellipsoid), 2 peak (a visor sticking out at +x at the crown's rim)."""
    PANELS, PEAK = 1, 2
    a, b, h = rng.uniform(0.45, 0.55), rng.uniform(0.36, 0.46), rng.uniform(0.3, 0.5)
    s = [ellipsoid((0, 0, 0), (a, h, b), PANELS, upper_only=True)]
    reach, half_angle = rng.uniform(0.25, 0.45), rng.uniform(0.9, 1.3)
    tilt = rot_z(-rng.uniform(0.0, 0.25))  # the peak bends down a little
    peak = disk(
        (0, 0, 0),
        (0, 1, 0),
        a + reach,
        PEAK,
        inner=0.5 * a,
        angles=(-half_angle, half_angle),
        axes=((1, 0, 0), (0, 0, 1)),
    )
    s.append(peak._replace(sample=lambda n, g: peak.sample(n, g) @ tilt.T))
    return s


def chair(rng: np.random.Generator) -> list[Surface]:
    """1 back (at -x, tilted back), 2 seat, 3 legs (four, or a swivel base), 4 arms (sometimes)."""
    BACK, SEAT, LEG, ARM = 1, 2, 3, 4
    width, depth, t = rng.uniform(0.8, 1.1), rng.uniform(0.75, 1.0), rng.uniform(0.05, 0.14)
    seat_y, back_h = rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.3)
    s = box((0, seat_y, 0), (depth, t, width), SEAT)
    tilt, back_t = rng.uniform(0.0, 0.3), rng.uniform(0.05, 0.1)
    center = (
        -depth / 2 + back_t / 2 - np.sin(tilt) * back_h / 2,
        seat_y + t / 2 + np.cos(tilt) * back_h / 2,
        0,
    )
    s += box(center, (back_t, back_h, width * rng.uniform(0.85, 1.0)), BACK, rot=rot_z(tilt))
    bottom = seat_y - t / 2
    if rng.random() < 0.75:
        leg = rng.uniform(0.04, 0.08)
        for x in (depth / 2 - leg, -depth / 2 + leg):
            for z in (width / 2 - leg, -width / 2 + leg):
                if rng.random() < 0.5:
                    s += box((x, bottom / 2, z), (leg, bottom, leg), LEG)
                else:
                    s += cylinder((x, 0, z), (x, bottom, z), leg / 2, LEG)
    else:  # swivel: a column and five spokes
        s += cylinder((0, 0.12, 0), (0, bottom, 0), 0.05, LEG)
        for k in range(5):
            a = 2 * np.pi * k / 5
            s += tube([(0, 0.12, 0), (0.45 * depth * np.cos(a), 0.04, 0.45 * width * np.sin(a))], 0.03, LEG)
    if rng.random() < 0.45:
        arm_y, arm_w = seat_y + rng.uniform(0.2, 0.32), rng.uniform(0.05, 0.1)
        for side in (1, -1):
            z = side * (width / 2 - arm_w / 2)
            s += box((0, arm_y, z), (depth * 0.9, 0.05, arm_w), ARM)
            s += box((depth * 0.35, (arm_y + seat_y) / 2, z), (0.05, arm_y - seat_y, arm_w * 0.8), ARM)
    return s


def lamp(rng: np.random.Generator) -> list[Surface]:
    """1 base, 2 shade, 3 canopy (hanging lamps), 4 tube (pole, arm or cord)."""
    BASE, SHADE, CANOPY, TUBE = 1, 2, 3, 4
    shade_r, shade_h = rng.uniform(0.25, 0.4), rng.uniform(0.25, 0.45)
    top_r = shade_r * rng.uniform(0.3, 0.8)
    if rng.random() < 0.6:  # standing lamp: base, pole (maybe bent), shade
        base_r, base_h = rng.uniform(0.25, 0.4), rng.uniform(0.03, 0.08)
        s = cylinder((0, 0, 0), (0, base_h, 0), base_r, BASE)
        pole_h, bend = rng.uniform(0.8, 1.4), rng.uniform(-0.3, 0.3) if rng.random() < 0.4 else 0.0
        head = (bend, base_h + pole_h, 0)
        s += tube([(0, base_h, 0), (0, base_h + 0.6 * pole_h, 0), head], rng.uniform(0.015, 0.06), TUBE)
        s += frustum(
            (head[0], head[1] - 0.4 * shade_h, 0),
            (head[0], head[1] + 0.6 * shade_h, 0),
            shade_r,
            top_r,
            SHADE,
            caps=(False, False),
        )
        return s
    canopy_r = rng.uniform(0.1, 0.2)  # hanging lamp: canopy at the ceiling, cord, shade
    s = cylinder((0, 0, 0), (0, -0.05, 0), canopy_r, CANOPY)
    cord = rng.uniform(0.6, 1.2)
    s += cylinder((0, -0.05, 0), (0, -0.05 - cord, 0), rng.uniform(0.01, 0.02), TUBE, caps=False)
    y = -0.05 - cord
    if rng.random() < 0.5:
        s += frustum((0, y - shade_h, 0), (0, y, 0), shade_r, top_r, SHADE, caps=(False, True))
    else:
        s.append(
            ellipsoid(
                (0, y, 0), (shade_r, shade_h, shade_r), SHADE, rot=np.diag([1.0, -1.0, 1.0]), upper_only=True
            )
        )
    return s


def laptop(rng: np.random.Generator) -> list[Surface]:
    """1 keyboard (the base), 2 screen, hinged at -x and opened backwards."""
    KEYBOARD, SCREEN = 1, 2
    depth, width, t = rng.uniform(0.6, 0.8), rng.uniform(0.9, 1.15), rng.uniform(0.025, 0.05)
    s = box((0, t / 2, 0), (depth, t, width), KEYBOARD)
    opening = rng.uniform(np.radians(95), np.radians(130))  # from the keyboard's plane
    lean = opening - np.pi / 2
    height = depth * rng.uniform(0.85, 1.0)
    center = (-depth / 2 - np.sin(lean) * height / 2, t + np.cos(lean) * height / 2, 0)
    s += box(center, (t * 0.8, height, width), SCREEN, rot=rot_z(lean))
    return s


def mug(rng: np.random.Generator) -> list[Surface]:
    """1 handle (an arc at +x), 2 body (outer and inner wall, bottom)."""
    HANDLE, BODY = 1, 2
    radius, height, wall = rng.uniform(0.3, 0.45), rng.uniform(0.6, 1.0), rng.uniform(0.02, 0.05)
    taper = rng.uniform(0.85, 1.0)
    s = frustum((0, -height / 2, 0), (0, height / 2, 0), radius * taper, radius, BODY, caps=(True, False))
    s += frustum(
        (0, -height / 2 + wall, 0),
        (0, height / 2, 0),
        radius * taper - wall,
        radius - wall,
        BODY,
        caps=(True, False),
    )
    arm, tube_r = rng.uniform(0.3, 0.42) * height, rng.uniform(0.03, 0.07)
    cy = rng.uniform(-0.05, 0.05) * height
    s.append(
        torus(
            (radius * 0.95, cy, 0),
            (0, 0, 1),
            arm,
            tube_r,
            HANDLE,
            arc=(-np.pi / 2, np.pi / 2),
            axes=((1, 0, 0), (0, 1, 0)),
        )
    )
    return s


def table(rng: np.random.Generator) -> list[Surface]:
    """1 top (square or round), 2 legs (four, maybe splayed, or a pedestal), 3 support (apron, a lower shelf
    or stretchers; sometimes)."""
    TOP, LEG, SUPPORT = 1, 2, 3
    depth, width = rng.uniform(0.9, 1.8), rng.uniform(0.9, 1.8)
    t, height = rng.uniform(0.03, 0.08), rng.uniform(0.65, 1.0)
    round_top = rng.random() < 0.4
    if round_top:
        depth = width = min(depth, width)
        s = cylinder((0, height - t, 0), (0, height, 0), depth / 2, TOP)
    else:
        s = box((0, height - t / 2, 0), (depth, t, width), TOP)
    bottom = height - t
    if rng.random() < 0.75:
        leg, inset = rng.uniform(0.04, 0.08), rng.uniform(0.02, 0.12) + (0.12 * depth if round_top else 0)
        splay = rng.uniform(0.1, 0.25) if rng.random() < 0.3 else 0.0
        xin, zin = depth / 2 - inset - leg, width / 2 - inset - leg
        for sx in (1, -1):
            for sz in (1, -1):
                x, z = sx * (xin + leg / 2), sz * (zin + leg / 2)
                s += cylinder((x * (1 + splay), 0, z * (1 + splay)), (x, bottom, z), leg / 2, LEG)
        kind = rng.choice(["apron", "shelf", "stretchers", "none"])
        if kind == "apron":
            for sz in (1, -1):
                s += box((0, bottom - 0.05, sz * zin), (2 * xin, 0.1, 0.02), SUPPORT)
                s += box((sz * xin, bottom - 0.05, 0), (0.02, 0.1, 2 * zin), SUPPORT)
        elif kind == "shelf":
            s += box((0, rng.uniform(0.1, 0.3) * bottom, 0), (2 * xin, 0.03, 2 * zin), SUPPORT)
        elif kind == "stretchers":
            y = rng.uniform(0.15, 0.35) * bottom
            s += box((0, y, zin), (2 * xin, 0.03, 0.03), SUPPORT) + box(
                (0, y, -zin), (2 * xin, 0.03, 0.03), SUPPORT
            )
    else:  # pedestal: a column on a foot, a small support plate under the top
        s += cylinder((0, 0.04, 0), (0, bottom, 0), rng.uniform(0.05, 0.1), LEG, caps=False)
        s += cylinder((0, 0, 0), (0, 0.04, 0), rng.uniform(0.25, 0.4) * min(depth, width), LEG)
        s += cylinder(
            (0, bottom - 0.04, 0), (0, bottom, 0), rng.uniform(0.15, 0.3) * min(depth, width), SUPPORT
        )
    return s
