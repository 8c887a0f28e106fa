"""Painters and outlines: shapes, ranges, determinism, and the Voronoi helper against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.world.catalogue import STUFF, THINGS
from pipeline.world.shapes import EXTENT, OUTLINES, outline_level, sample_outline
from pipeline.world.textures import _voronoi, jitter_palette, paint_stuff, paint_thing, value_noise


def _grid(n: int = 48, reach: float = EXTENT) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[-reach : reach : n * 1j, -reach : reach : n * 1j].astype(np.float32)
    return u, v


@pytest.mark.parametrize("family", OUTLINES)
def test_outlines_fit_their_extent(family: str) -> None:
    u, v = _grid(96, reach=EXTENT * 1.2)
    outline = sample_outline(family, np.random.default_rng(0))
    inside = outline_level(outline, u, v) <= 1
    assert inside.mean() > 0.05  # a real area, not a sliver
    assert not inside[(np.abs(u) > EXTENT) | (np.abs(v) > EXTENT)].any()


@pytest.mark.parametrize("spec", THINGS, ids=lambda s: s.name)
def test_thing_painters(spec) -> None:
    u, v = _grid()
    outline = sample_outline(spec.outline, np.random.default_rng(1))
    level = outline_level(outline, u, v)
    first = paint_thing(spec.texture, outline, u, v, level, 30.0, np.random.default_rng(2))
    again = paint_thing(spec.texture, outline, u, v, level, 30.0, np.random.default_rng(2))
    assert first.shape == (48, 48, 3) and first.dtype == np.float32
    assert np.array_equal(first, again)
    inside = level <= 1
    assert first.min() >= 0 and first.max() <= 255.5
    # a texture, not a flat fill: at least two clearly different colours inside the outline
    assert np.ptp(first[inside].mean(axis=1)) > 25


@pytest.mark.parametrize("spec", STUFF, ids=lambda s: s.name)
def test_stuff_painters(spec) -> None:
    y, x = (np.mgrid[0:64, 0:64].astype(np.float32) + 0.5) / 64
    rgb = paint_stuff(spec.texture, x, y, np.random.default_rng(3))
    assert rgb.shape == (64, 64, 3) and rgb.min() >= 0 and rgb.max() <= 255.5
    assert np.ptp(rgb.mean(axis=2)) > 10


def test_unknown_families_refused() -> None:
    from dataclasses import replace

    u, v = _grid(8)
    bad = replace(THINGS[0].texture, family="plaid")
    outline = sample_outline("ellipse", np.random.default_rng(0))
    with pytest.raises(ValueError, match="plaid"):
        paint_thing(bad, outline, u, v, outline_level(outline, u, v), 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="plaid"):
        paint_stuff(bad, u, v, np.random.default_rng(0))
    with pytest.raises(ValueError, match="hexagram"):
        sample_outline("hexagram", np.random.default_rng(0))


def test_voronoi_matches_brute_force() -> None:
    rng_points = np.random.default_rng(5)
    a = rng_points.uniform(-2.5, 3.5, size=(30, 30)).astype(np.float32)
    b = rng_points.uniform(-1.5, 2.5, size=(30, 30)).astype(np.float32)
    best, second, cell = _voronoi(np.random.default_rng(9), a, b)
    # rebuild the lattice points exactly as _voronoi draws them
    ca, cb = np.floor(a).astype(np.int32), np.floor(b).astype(np.int32)
    i0, j0 = int(ca.min()) - 1, int(cb.min()) - 1
    rows, cols = int(ca.max()) - i0 + 2, int(cb.max()) - j0 + 2
    table = np.random.default_rng(9).random((rows, cols, 2), dtype=np.float32)
    ii, jj = np.mgrid[0:rows, 0:cols]
    pa = (ii + i0 + 0.5 + (table[..., 0] - 0.5) * 0.8).ravel()
    pb = (jj + j0 + 0.5 + (table[..., 1] - 0.5) * 0.8).ravel()
    d = np.hypot(a[..., None] - pa, b[..., None] - pb)
    order = np.sort(d, axis=-1)
    np.testing.assert_allclose(best, order[..., 0], atol=1e-5)
    np.testing.assert_allclose(second, order[..., 1], atol=1e-5)
    nearest = np.argmin(d, axis=-1)
    assert np.array_equal(cell[..., 0], (ii.ravel() + i0)[nearest])
    assert np.array_equal(cell[..., 1], (jj.ravel() + j0)[nearest])


def test_value_noise_and_palette_jitter() -> None:
    u, v = _grid(32, reach=4.0)
    noise = value_noise(np.random.default_rng(0), u, v)
    assert noise.min() >= 0 and noise.max() <= 1 and noise.std() > 0.05
    palette = jitter_palette(((200, 30, 30), (20, 20, 20)), np.random.default_rng(0))
    assert palette.shape == (2, 3)
    assert np.abs(palette - np.array([[200, 30, 30], [20, 20, 20]])).max() < 40
