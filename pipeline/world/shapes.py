"""Outlines of things as level functions in object coordinates.

An object is drawn in local coordinates ``(u, v)`` (rotated, scaled so that its
radius is 1 and its aspect ratio is folded in). An outline is a *level*
``f(u, v)`` with ``f <= 1`` inside; ``1 - f`` grows towards the middle, which the
rim texture uses. Every outline lies within radius ~1.3 so the caller can bound
its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTLINES = (
    "ellipse",
    "egg",
    "square",
    "blob",
    "annulus",
    "sector",
    "wave",
    "shirt",
    "polygon3",
    "polygon4",
    "polygon6",
)
EXTENT = 1.3  # every outline fits in |u|, |v| <= EXTENT


@dataclass(frozen=True)
class Outline:
    """One instance's outline: the family and its per-instance parameters."""

    family: str
    params: tuple[float, ...] = ()


def sample_outline(family: str, rng: np.random.Generator) -> Outline:
    """Draw the per-instance parameters of an outline family (blob harmonics, spans, phases)."""
    if family not in OUTLINES:
        raise ValueError(f"unknown outline family {family!r}")
    if family == "blob":
        amplitudes = rng.uniform(0.0, 0.12, size=3)
        phases = rng.uniform(0.0, 2 * np.pi, size=3)
        return Outline(family, tuple(float(x) for x in (*amplitudes, *phases)))
    if family == "annulus":
        return Outline(family, (float(rng.uniform(0.4, 0.6)),))
    if family == "sector":
        return Outline(family, (float(rng.uniform(0.8, 1.15) * np.pi),))
    if family == "wave":
        return Outline(
            family, (float(rng.uniform(0.2, 0.35)), float(rng.uniform(1.5, 2.5)), float(rng.uniform(0, 2 * np.pi)))
        )
    if family == "egg":
        return Outline(family, (float(rng.uniform(0.1, 0.25)),))
    return Outline(family)


def _polygon(r: np.ndarray, theta: np.ndarray, sides: int) -> np.ndarray:
    sector = 2 * np.pi / sides
    local = np.mod(theta + np.pi / 2, sector) - sector / 2
    return r * np.cos(local) / np.cos(np.pi / sides)


def outline_level(outline: Outline, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The level ``f(u, v)`` of ``outline`` (inside where ``f <= 1``)."""
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    family, p = outline.family, outline.params
    if family == "ellipse":
        return r
    if family == "egg":
        return np.hypot(u / (1.0 + p[0] * v), v)
    if family == "square":
        return (np.abs(u) ** 4 + np.abs(v) ** 4) ** 0.25
    if family == "blob":
        wobble = 1.0 + sum(p[k] * np.cos((k + 2) * theta + p[3 + k]) for k in range(3))
        return r / wobble
    if family == "annulus":
        inner = p[0]
        return np.abs(r - (1 + inner) / 2) / ((1 - inner) / 2)
    if family == "sector":
        half_span = p[0] / 2
        # the sector opens upwards (-v) and is shifted down so its mass is centred
        angle = np.abs(np.arctan2(u, -(v - 0.35)))
        return np.maximum(np.hypot(u, v - 0.35) / 1.05, angle / half_span)
    if family == "wave":
        amplitude, cycles, phase = p
        centre = amplitude * np.sin(np.pi * cycles * u + phase)
        return np.maximum(np.abs(u) / 1.15, np.abs(v - centre) / 0.28)
    if family == "shirt":
        body = np.maximum(np.abs(u) / 0.6, np.abs(v - 0.1) / 0.9)
        sleeves = np.maximum(np.abs(u) / 1.15, np.abs(v + 0.5) / 0.3)
        return np.minimum(body, sleeves)
    if family.startswith("polygon"):
        return _polygon(r, theta, int(family[len("polygon") :]))
    raise ValueError(f"unknown outline family {family!r}")
