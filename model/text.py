"""Text classifiers: class names to prompt-ensembled CLIP text embeddings.

A class name may list synonyms separated by commas (``"building, edifice"``).
Each (synonym, template) prompt is encoded and L2-normalised; the class embedding
is the mean over all templates and synonyms, renormalised. Every synonym is
encoded once per classifier (the cache holds its template mean), so evaluating
many benchmarks that share names costs one pass per distinct synonym.

When the CLIP carries learned text prompts (``bundle.text_prompts``, zsseg.baseline's
context vectors), a synonym's embedding is its learned-prompt encoding instead of the
template mean (no templates), unless ``learned_prompts=False``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from core.classnames import split_synonyms
from model.clip import ClipBundle
from model.text_prompts import encode_with_text_prompts

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def load_templates(name: str = "vild") -> list[str]:
    """Prompt templates from ``model/templates/<name>.json`` (a JSON list of ``"... {} ..."`` strings)."""
    path = TEMPLATES_DIR / f"{name}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in TEMPLATES_DIR.glob("*.json")))
        raise FileNotFoundError(f"{path}: no such template set (available: {available})")
    with open(path, encoding="utf-8") as handle:
        templates = json.load(handle)
    return check_templates(templates, source=str(path))


def check_templates(templates: Sequence[str], source: str = "templates") -> list[str]:
    """Return ``templates`` as a list after checking each holds exactly one ``{}`` slot."""
    if isinstance(templates, str) or not templates:
        raise ValueError(f"{source}: expected a non-empty list of template strings")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"{source}: template {template!r} must contain exactly one '{{}}'")
    return list(templates)


class TextClassifier:
    """Class-name embeddings ``[C, embed_dim]`` for one CLIP, with a per-synonym cache.

    The cache assumes the text tower does not change; call :meth:`clear` after
    training it (or build a new classifier). ``learned_prompts``: use the bundle's learned
    text prompts when it has them (``False``: templates always, e.g. for the proposer,
    which was trained against template embeddings).
    """

    def __init__(self, bundle: ClipBundle, templates: Sequence[str] | None = None, *, batch_size: int = 256,
                 learned_prompts: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.bundle = bundle
        self.templates = load_templates() if templates is None else check_templates(templates)
        self.batch_size = batch_size
        self.learned_prompts = learned_prompts and getattr(bundle, "text_prompts", None) is not None
        self._cache: dict[str, torch.Tensor] = {}

    def clear(self) -> None:
        """Forget every cached synonym embedding."""
        self._cache.clear()

    @torch.no_grad()
    def __call__(self, class_names: Sequence[str]) -> torch.Tensor:
        """L2-normalised float32 embeddings ``[C, embed_dim]``, one row per class name, in order."""
        per_class = [split_synonyms(name) for name in class_names]
        self._encode_missing(sorted({s for synonyms in per_class for s in synonyms} - self._cache.keys()))
        if not per_class:
            return torch.empty(0, self.bundle.embed_dim, device=self.bundle.device)
        rows = [torch.stack([self._cache[s] for s in synonyms]).mean(dim=0) for synonyms in per_class]
        return F.normalize(torch.stack(rows), dim=-1)

    def _encode_missing(self, synonyms: list[str]) -> None:
        """Cache, per synonym, the mean of its normalised template embeddings (or its learned-prompt encoding)."""
        if self.learned_prompts:
            chunks = [
                encode_with_text_prompts(self.bundle.model, self.bundle.tokenizer, self.bundle.text_prompts,
                                         synonyms[start : start + self.batch_size])
                for start in range(0, len(synonyms), self.batch_size)
            ]
            if chunks:
                self._cache.update(zip(synonyms, F.normalize(torch.cat(chunks).float(), dim=-1)))
            return
        prompts = [template.format(synonym) for synonym in synonyms for template in self.templates]
        if not prompts:
            return
        chunks = [
            self.bundle.encode_text(prompts[start : start + self.batch_size])
            for start in range(0, len(prompts), self.batch_size)
        ]
        means = torch.cat(chunks).view(len(synonyms), len(self.templates), -1).mean(dim=1)
        self._cache.update(zip(synonyms, means))
