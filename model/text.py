"""Text classifiers: class names to prompt-ensembled CLIP text embeddings.

A class name may list synonyms separated by commas (``"building, edifice"``).
Each (synonym, template) prompt is encoded and L2-normalised; the class embedding
is the mean over all templates and synonyms, renormalised. Every synonym is
encoded once per classifier (the cache holds its template mean), so evaluating
many benchmarks that share names costs one pass per distinct synonym.

When the CLIP carries learned text prompts (``bundle.text_prompts``, zsseg.baseline's
context vectors), a synonym's embedding is its learned-prompt encoding instead of the
template mean (no templates), unless ``learned_prompts=False``.

Embeddings are also kept **on disk** (:func:`cache_dir`), so that every CLIP sharing a text
tower (finetuning locks it) and every process embeds a vocabulary once: a wide benchmark's
~1,250 synonyms × 14 templates take a ViT-B/16 minutes on a CPU. An entry is
keyed by everything the numbers depend on: a digest of the text tower's weights (and of the
learned prompts), the templates, the synonyms of the request, the torch version, thread count,
device, autocast state and the encoding's version (:data:`model.text_tower.ENCODING`). So a
hit returns, bit for bit, what recomputing gives, and other weights can never be served. A
synonym's embedding does not depend on the others of its request (:func:`model.text_tower.encode_tokens`
runs every row in calls of a fixed shape): mining's runners, which group nouns differently, agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from core.classnames import split_synonyms
from core.io import atomic_write_bytes
from model.clip import DEFAULT_TEMPLATES, ClipBundle
from model.text_prompts import TextPrompts, encode_with_text_prompts
from model.text_tower import ENCODING, text_tower_digest

#: Environment variable naming the on-disk cache folder; ``off`` disables the cache.
CACHE_ENV = "OVSEG_TEXT_CACHE"

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def load_templates(name: str = DEFAULT_TEMPLATES) -> list[str]:
    """Prompt templates from ``model/templates/<name>.json`` (a JSON list of ``"... {} ..."`` strings)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"template set name {name!r}: letters, digits, '_' and '-' only (a file of {TEMPLATES_DIR})")
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


def cache_dir() -> Path | None:
    """The on-disk embedding cache: ``$OVSEG_TEXT_CACHE`` (``off``: none), else
    ``$XDG_CACHE_HOME/ovseg/text_embeddings`` (``~/.cache/...``)."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ovseg" / "text_embeddings"


class TextClassifier:
    """Class-name embeddings ``[C, embed_dim]`` for one CLIP, with a per-synonym cache.

    The cache assumes the text tower does not change; call :meth:`clear` after
    training it (or build a new classifier). ``learned_prompts``: use the bundle's learned
    text prompts when it has them (``False``: templates always, e.g. for the proposer,
    which was trained against template embeddings). ``templates``: the bundle's set when None.
    """

    def __init__(
        self,
        bundle: ClipBundle,
        templates: Sequence[str] | None = None,
        *,
        learned_prompts: bool = True,
        disk_cache: Path | str | None = "default",
    ):
        self.bundle = bundle
        self.templates = load_templates(bundle.templates) if templates is None else check_templates(templates)
        self.learned_prompts = learned_prompts and getattr(bundle, "text_prompts", None) is not None
        self.disk_cache = cache_dir() if disk_cache == "default" else disk_cache
        self._cache: dict[str, torch.Tensor] = {}
        self._weights_digest: str | None = None

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
        """Cache, per synonym, the mean of its normalised template embeddings (or its learned-prompt
        encoding), from the disk cache when it holds this very request."""
        if not synonyms:
            return
        path = None if self.disk_cache is None else Path(self.disk_cache) / f"{self._request_key(synonyms)}.safetensors"
        if path is not None and path.is_file():
            embeddings = load_tensors(path.read_bytes())["embeddings"]
            if embeddings.shape == (len(synonyms), self.bundle.embed_dim):
                self._cache.update(zip(synonyms, embeddings.to(self.bundle.device)))
                return
        embeddings = self._encode(synonyms)
        if path is not None:
            atomic_write_bytes(path, save_tensors({"embeddings": embeddings.detach().cpu().contiguous()}))
        self._cache.update(zip(synonyms, embeddings))

    def _encode(self, synonyms: list[str]) -> torch.Tensor:
        """``[N, embed_dim]``: each synonym's template mean, or its learned-prompt encoding, normalised."""
        if self.learned_prompts:
            features = encode_with_text_prompts(
                self.bundle.model, self.bundle.tokenizer, self._text_prompts(), synonyms
            )
            return F.normalize(features.float(), dim=-1)
        prompts = [template.format(synonym) for synonym in synonyms for template in self.templates]
        return self.bundle.encode_text(prompts).view(len(synonyms), len(self.templates), -1).mean(dim=1)

    def _text_prompts(self) -> TextPrompts:
        """The bundle's learned prompts (there are some when ``learned_prompts``)."""
        prompts = self.bundle.text_prompts
        assert prompts is not None, "learned_prompts is set only when the bundle has text prompts"
        return prompts

    def _request_key(self, synonyms: list[str]) -> str:
        """SHA-256 of everything an encoding of ``synonyms`` depends on (see the module docstring)."""
        if self._weights_digest is None:
            parts = [text_tower_digest(self.bundle.model)]
            if self.learned_prompts:
                ctx = self._text_prompts().ctx.detach().cpu().contiguous().float()
                parts.append(hashlib.sha256(ctx.numpy().tobytes()).hexdigest())
            self._weights_digest = "/".join(parts)
        device = self.bundle.device
        autocast = torch.is_autocast_enabled(device.type) and str(torch.get_autocast_dtype(device.type))
        request = {
            "weights": self._weights_digest,
            "encoding": ENCODING,
            "mode": "learned_prompts" if self.learned_prompts else self.templates,
            "synonyms": synonyms,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "autocast": autocast,
        }
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
