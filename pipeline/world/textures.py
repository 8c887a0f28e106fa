"""Painters: a class's :class:`~pipeline.world.catalogue.Texture` turned into pixels.

Things are painted in their local coordinates ``(u, v)`` (radius 1, rotated with
the object), so a zebra's stripes turn with the zebra and keep their count at
every size; a texture period is never finer than :data:`MIN_PERIOD_PX` pixels.
Stuff is painted on the whole image in image-side units ``(x, y)`` in [0, 1].
All randomness comes from the generator passed in; outputs are float RGB in
[0, 255] of shape ``H×W×3``.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.world.catalogue import RGB, Texture
from pipeline.world.shapes import Outline

MIN_PERIOD_PX = 4.0


def jitter_palette(
    palette: tuple[RGB, ...], rng: np.random.Generator, hue: float = 0.025, value: float = 0.08
) -> np.ndarray:
    """The palette with one small hue shift and brightness factor for the whole instance."""
    shift = rng.uniform(-hue, hue)
    gain = rng.uniform(1 - value, 1 + value)
    out = []
    for r, g, b in palette:
        h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        r2, g2, b2 = colorsys.hsv_to_rgb((h + shift) % 1.0, s, min(1.0, v * gain))
        out.append((r2 * 255, g2 * 255, b2 * 255))
    return np.asarray(out, dtype=np.float32)


def _pick(palette: np.ndarray, index: np.ndarray) -> np.ndarray:
    return palette[np.clip(index, 0, len(palette) - 1).astype(np.intp)]


def _blend(palette: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear blend through the palette at positions ``t`` in [0, len-1]."""
    t = np.clip(t, 0, len(palette) - 1)
    low = np.floor(t).astype(np.intp)
    high = np.minimum(low + 1, len(palette) - 1)
    frac = (t - low)[..., None]
    return palette[low] * (1 - frac) + palette[high] * frac


def _rotate(u: np.ndarray, v: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return u * c + v * s, -u * s + v * c


def _lattice(rng: np.random.Generator, ci: np.ndarray, cj: np.ndarray, channels: int = 1) -> np.ndarray:
    """Random values attached to integer lattice points ``(ci, cj)``: ``ci.shape + (channels,)``."""
    i0, j0 = int(ci.min()), int(cj.min())
    table = rng.random((int(ci.max()) - i0 + 1, int(cj.max()) - j0 + 1, channels), dtype=np.float32)
    return table[ci - i0, cj - j0]


def value_noise(rng: np.random.Generator, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smooth noise in [0, 1] with one random value per unit cell of ``(a, b)``."""
    fa, fb = np.floor(a), np.floor(b)
    ia, ib = fa.astype(np.int64), fb.astype(np.int64)
    sa, sb = a - fa, b - fb
    sa, sb = sa * sa * (3 - 2 * sa), sb * sb * (3 - 2 * sb)
    i0, j0 = int(ia.min()), int(ib.min())
    table = rng.random((int(ia.max()) - i0 + 2, int(ib.max()) - j0 + 2), dtype=np.float32)
    ia, ib = ia - i0, ib - j0
    top = table[ia, ib] * (1 - sb) + table[ia, ib + 1] * sb
    bottom = table[ia + 1, ib] * (1 - sb) + table[ia + 1, ib + 1] * sb
    return top * (1 - sa) + bottom * sa


def _voronoi(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, jitter: float = 0.8):
    """Distances to the nearest and second-nearest jittered lattice point, and the nearest's cell."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    ca, cb = np.floor(a).astype(np.int32), np.floor(b).astype(np.int32)
    i0, j0 = int(ca.min()) - 1, int(cb.min()) - 1
    rows, cols = int(ca.max()) - i0 + 2, int(cb.max()) - j0 + 2
    table = rng.random((rows, cols, 2), dtype=np.float32)
    # lattice point of each cell, flattened so neighbours are a gather by flat index
    points_a = (np.arange(rows, dtype=np.float32)[:, None] + i0 + 0.5 + (table[..., 0] - 0.5) * jitter).ravel()
    points_b = (np.arange(cols, dtype=np.float32)[None, :] + j0 + 0.5 + (table[..., 1] - 0.5) * jitter).ravel()
    base = (ca - i0) * cols + (cb - j0)
    best = np.full(a.shape, np.inf, dtype=np.float32)
    second = np.full(a.shape, np.inf, dtype=np.float32)
    nearest = np.zeros(a.shape, dtype=np.int8)
    neighbours = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    for k, (di, dj) in enumerate(neighbours):
        flat = base + (di * cols + dj)
        d = np.hypot(a - points_a.take(flat), b - points_b.take(flat))
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        best = np.where(closer, d, best)
        nearest[closer] = k
    steps = np.array(neighbours, dtype=np.int64)[nearest]
    cell = np.stack([ca, cb], axis=-1).astype(np.int64) + steps
    return best, second, cell


def _origin(outline: Outline) -> tuple[float, float]:
    """Where radial textures (wedges, rings) are centred for an outline."""
    return (0.0, 0.35) if outline.family == "sector" else (0.0, 0.0)


@dataclass(frozen=True)
class _ThingFrame:
    """What every thing painter gets: the texture, outline, jittered palette, local grid and shared draws."""

    texture: Texture
    outline: Outline
    palette: np.ndarray
    u: np.ndarray
    v: np.ndarray
    level: np.ndarray
    period: float
    size: float
    phase: float


def _stripes(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    a, b = _rotate(f.u, f.v, f.texture.angle + rng.uniform(-10, 10))
    a = a + f.texture.wobble * np.sin(2 * np.pi * b / (2 * f.period) + rng.uniform(0, 2 * np.pi))
    return _pick(f.palette, (np.mod(a / f.period + f.phase, 1.0) < f.texture.duty).astype(np.int8))


def _dots(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    """Jittered dots on a lattice: ``dots`` (optionally ringed), ``eyes`` (ringed) and ``sprinkles`` (many colours)."""
    family, palette, period = f.texture.family, f.palette, f.period
    a, b = _rotate(f.u, f.v, rng.uniform(0, 180))
    a, b = a / period + f.phase, b / period + rng.random()
    ca, cb = np.floor(a).astype(np.int64), np.floor(b).astype(np.int64)
    extra = _lattice(rng, ca, cb, 4)
    d = np.hypot(a - ca - 0.5 - (extra[..., 0] - 0.5) * 0.35, b - cb - 0.5 - (extra[..., 1] - 0.5) * 0.35)
    radius = f.size / period * (0.8 + 0.4 * extra[..., 2])
    index = np.zeros(f.u.shape, dtype=np.int8)
    if family == "eyes":
        index[d < radius * 1.9] = 2
        index[d < radius] = 1
    elif family == "sprinkles":
        colour = 1 + np.floor(extra[..., 3] * (len(palette) - 1)).astype(np.int8)
        index = np.where(d < radius, colour, 0)
    else:
        index[d < radius] = 1
        if len(palette) > 2:
            index[(d >= radius) & (d < radius * 1.3)] = 2
    return _pick(palette, index)


def _checks(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    """A square grid: ``checker`` alternates two colours, ``gingham`` overlays two sets of bands."""
    a, b = _rotate(f.u, f.v, f.texture.angle + rng.uniform(-8, 8))
    a, b = a / f.period + f.phase, b / f.period + rng.random()
    if f.texture.family == "checker":
        index = np.mod(np.floor(a) + np.floor(b), 2)
    else:
        index = (np.mod(a, 1.0) < 0.5).astype(np.int8) + (np.mod(b, 1.0) < 0.5).astype(np.int8)
    return _pick(f.palette, index)


def _rings(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    ox, oy = rng.uniform(-0.15, 0.15, size=2)
    r = np.hypot(f.u - ox, f.v - oy)
    if f.texture.wobble:
        r = r + f.texture.wobble * (value_noise(rng, f.u * 3, f.v * 3) - 0.5)
    return _pick(f.palette, (np.mod(r / f.period + f.phase, 1.0) < f.texture.duty).astype(np.int8))


def _speckle(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    period = f.period
    a, b = _rotate(f.u, f.v, rng.uniform(0, 180))
    noise = 0.65 * value_noise(rng, a / period, b / period) + 0.35 * value_noise(
        rng, a / (period / 2.5), b / (period / 2.5)
    )
    index = (noise > 1 - f.texture.duty * 0.9 - 0.05).astype(np.int8)
    if len(f.palette) > 2:
        index = np.where(noise < 0.3, 1, np.where(noise > 0.68, 2, 0))
    return _pick(f.palette, index)


def _gradient(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    hx, hy = rng.uniform(-0.45, -0.25, size=2)
    return _blend(f.palette, np.clip(np.hypot(f.u - hx, f.v - hy) / 1.5, 0, 1) * (len(f.palette) - 1))


def _rim(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    palette, level = f.palette, f.level
    rgb = palette[0] * (1.0 - 0.12 * np.clip(level, 0, 1))[..., None]
    rgb = np.where((level > 1 - f.size)[..., None], palette[1], rgb)
    highlight = np.clip(1 - np.hypot(f.u + 0.35, f.v + 0.35) / 0.3, 0, 1)[..., None]
    return rgb * (1 - highlight * 0.8) + palette[2] * highlight * 0.8


def _zigzag(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    a, b = _rotate(f.u, f.v, f.texture.angle + rng.uniform(-8, 8))
    wavelength = 2 * f.period
    tri = np.abs(np.mod(b / wavelength + rng.random(), 1.0) - 0.5) * 4 - 1
    index = np.mod(np.floor((a + f.texture.wobble * tri) / f.period + f.phase * len(f.palette)), len(f.palette))
    return _pick(f.palette, index)


def _wedges(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    ox, oy = _origin(f.outline)
    theta = np.arctan2(f.v - oy, f.u - ox)
    count = int(f.texture.period)
    index = np.mod(np.floor((theta + np.pi) / (2 * np.pi / count) + f.phase), len(f.palette))
    return _pick(f.palette, index)


def _voronoi_cells(f: _ThingFrame, rng: np.random.Generator) -> np.ndarray:
    """Voronoi cells: ``patches`` draws their borders, ``cells`` darkens a share of them."""
    a, b = _rotate(f.u, f.v, rng.uniform(0, 180))
    d1, d2, cell = _voronoi(rng, a / f.period, b / f.period)
    if f.texture.family == "patches":
        return _pick(f.palette, (d2 - d1 < f.size / f.period).astype(np.int8))
    dark = _lattice(rng, cell[..., 0], cell[..., 1])[..., 0] < f.texture.duty
    return _pick(f.palette, dark.astype(np.int8))


_THING_PAINTERS: dict[str, Callable[[_ThingFrame, np.random.Generator], np.ndarray]] = {
    "stripes": _stripes,
    "dots": _dots,
    "eyes": _dots,
    "sprinkles": _dots,
    "checker": _checks,
    "gingham": _checks,
    "rings": _rings,
    "speckle": _speckle,
    "gradient": _gradient,
    "rim": _rim,
    "zigzag": _zigzag,
    "wedges": _wedges,
    "patches": _voronoi_cells,
    "cells": _voronoi_cells,
}


def paint_thing(
    texture: Texture,
    outline: Outline,
    u: np.ndarray,
    v: np.ndarray,
    level: np.ndarray,
    radius_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paint one thing instance over its local coordinates."""
    palette = jitter_palette(texture.palette, rng)
    # keep texture details at least MIN_PERIOD_PX pixels wide on small instances
    scale = (
        max(1.0, MIN_PERIOD_PX / (texture.period * radius_px))
        if texture.family not in ("wedges", "gradient", "rim")
        else 1.0
    )
    period, size = texture.period * scale, texture.size * scale
    phase = rng.random()
    painter = _THING_PAINTERS.get(texture.family)
    if painter is None:
        raise ValueError(f"unknown thing texture family {texture.family!r}")
    rgb = painter(_ThingFrame(texture, outline, palette, u, v, level, period, size, phase), rng)
    return rgb.astype(np.float32)


def _sky(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = np.clip(y * 1.2 + rng.uniform(-0.1, 0.1), 0, 1)
    rgb = _blend(palette[:2], t)
    clouds = value_noise(rng, x / 0.22 + rng.random() * 50, y / 0.08)
    amount = np.clip((clouds - 0.55) / 0.2, 0, 1)[..., None]
    return rgb * (1 - amount) + palette[2] * amount


def _blades(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = value_noise(rng, x / 0.012, y / 0.07) * 0.7 + value_noise(rng, x / 0.05, y / 0.05) * 0.3
    return _pick(palette, np.where(noise < 0.38, 1, np.where(noise > 0.66, 2, 0)))


def _ripples(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    wave = np.sin(2 * np.pi * (y / 0.045 + 0.3 * np.sin(2 * np.pi * x / 0.35 + rng.uniform(0, 6.3)) + rng.random()))
    rgb = _blend(palette[:2], (wave + 1) / 2)
    return np.where((wave > 0.9)[..., None], palette[2], rgb)


def _grain(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ripple = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.5 * y) / 0.07 + rng.uniform(0, 6.3))
    rgb = palette[0] * (1 - 0.5 * ripple[..., None]) + palette[2] * 0.5 * ripple[..., None]
    return np.where((rng.random(x.shape) < 0.18)[..., None], palette[1], rgb)


def _snow(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    amount = 0.45 * value_noise(rng, x / 0.15, y / 0.15)[..., None]
    rgb = palette[0] * (1 - amount) + palette[1] * amount
    return np.where((rng.random(x.shape) < 0.03)[..., None], palette[2], rgb)


def _road(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rgb = np.where((rng.random(x.shape) < 0.35)[..., None], palette[1], palette[0])
    rows = np.mod(y - rng.random() * 0.3, 0.3)
    dashes = (rows < 0.022) & (np.mod(x / 0.14 + rng.random(), 1.0) < 0.55)
    return np.where(dashes[..., None], palette[2], rgb)


def _bricks(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = y / 0.075 + rng.random()
    row = np.floor(rows).astype(np.int64)
    cols = x / 0.17 + 0.5 * np.mod(row, 2) + rng.random()
    shade = _lattice(rng, row, np.floor(cols).astype(np.int64))
    rgb = palette[0] * (1 - shade * 0.6) + palette[1] * shade * 0.6
    mortar = (np.mod(rows, 1.0) < 0.16) | (np.mod(cols, 1.0) < 0.07)
    return np.where(mortar[..., None], palette[2], rgb)


def _planks(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = y / 0.1 + rng.random()
    row = np.floor(rows).astype(np.int64)
    shade = _lattice(rng, row, np.zeros_like(row), 2)
    rgb = palette[0] * (1 - shade[..., :1] * 0.7) + palette[2] * shade[..., :1] * 0.7
    grain = np.sin(2 * np.pi * (y / 0.014 + 0.6 * np.sin(2 * np.pi * x / 0.45 + shade[..., 1] * 6.3)))
    rgb = rgb * (1 - 0.08 * (grain[..., None] > 0.6))
    seams = (np.mod(rows, 1.0) < 0.07) | (np.mod(x / 0.55 + shade[..., 1], 1.0) < 0.02)
    return np.where(seams[..., None], palette[1], rgb)


def _pebbles(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d1, d2, cell = _voronoi(rng, x / 0.065, y / 0.065)
    shade = _lattice(rng, cell[..., 0], cell[..., 1])[..., 0] * 2
    rgb = _blend(palette[:3], shade)
    return np.where((d2 - d1 < 0.14)[..., None], palette[3], rgb)


def _diamond_lattice(palette: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a, b = (x + y) / 0.075 + rng.random(), (x - y) / 0.075 + rng.random()
    rgb = _pick(palette, np.mod(np.floor(a) + np.floor(b), 2))
    lines = (np.mod(a, 1.0) < 0.12) | (np.mod(b, 1.0) < 0.12)
    return np.where(lines[..., None], palette[2], rgb)


_STUFF_PAINTERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = {
    "sky": _sky,
    "blades": _blades,
    "ripples": _ripples,
    "grain": _grain,
    "snow": _snow,
    "road": _road,
    "bricks": _bricks,
    "planks": _planks,
    "pebbles": _pebbles,
    "lattice": _diamond_lattice,
}


def paint_stuff(texture: Texture, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint a stuff texture over the whole image grid (``x``, ``y`` in image sides)."""
    palette = jitter_palette(texture.palette, rng, hue=0.015, value=0.06)
    painter = _STUFF_PAINTERS.get(texture.family)
    if painter is None:
        raise ValueError(f"unknown stuff texture family {texture.family!r}")
    return painter(palette, x, y, rng).astype(np.float32)
