"""Stage ``nouns``: the nouns of every training caption, by an Apache Beam job with spaCy.

Reads params ``nouns`` and the world's captions (``data/world/manifest.json``);
writes, each atomically, ``data/nouns/`` (``pipeline.beam.schemas.NOUNS`` shards),
``data/rejects/nouns/`` (``pipeline.beam.schemas.REJECTS`` shards) and
``metrics/nouns.json`` (counts, rejects by reason, most common nouns, time).
The extraction rules are those of :mod:`pipeline.nouns.extract`; the job and its
reconciliation are :mod:`pipeline.nouns.job`.

    python -m stages.nouns [--params params.yaml] [--manifest data/world/manifest.json]
                           [--out data/nouns] [--rejects data/rejects/nouns] [--metrics metrics/nouns.json]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import paths
from core.cli import exit_process
from core.params import load_params
from core.timing import StageTimer
from pipeline.beam.stage import beam_stage_main, rejects_summary
from pipeline.nouns.extract import DEFAULT_MAX_COMPOUND_WORDS, SpacyModelError
from pipeline.nouns.job import run_nouns_job

LOG = logging.getLogger("stages.nouns")


@dataclass(frozen=True)
class NounsConfig:
    """The ``nouns`` params section, validated."""

    spacy_model: str
    stoplist: tuple[str, ...]
    num_shards: int
    batch_size: int
    compounds: bool = True
    max_compound_words: int = DEFAULT_MAX_COMPOUND_WORDS
    runner: dict[str, Any] = field(default_factory=lambda: {"runner": "direct"})

    @classmethod
    def from_params(cls, section: Mapping[str, Any]) -> NounsConfig:
        """Build from the params mapping; unknown keys and wrong types raise ``ValueError`` naming the key."""
        if not isinstance(section, Mapping):
            raise ValueError("params 'nouns' must be a mapping")
        known = {"spacy_model", "stoplist", "num_shards", "batch_size", "compounds", "max_compound_words", "runner"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"params 'nouns': unknown keys {unknown}")
        for key in ("spacy_model", "stoplist", "num_shards", "batch_size"):
            if key not in section:
                raise ValueError(f"params 'nouns': missing '{key}'")

        def positive_int(key: str, minimum: int = 1) -> int:
            value = section[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"params 'nouns.{key}' must be an integer ≥ {minimum}, got {value!r}")
            return value

        if not isinstance(section["spacy_model"], str) or not section["spacy_model"]:
            raise ValueError("params 'nouns.spacy_model' must be a model name")
        stoplist = section["stoplist"]
        if not isinstance(stoplist, list) or not all(isinstance(word, str) for word in stoplist):
            raise ValueError("params 'nouns.stoplist' must be a list of words")
        compounds = section.get("compounds", True)
        if not isinstance(compounds, bool):
            raise ValueError(f"params 'nouns.compounds' must be true or false, got {compounds!r}")
        runner = section.get("runner", {"runner": "direct"})
        if not isinstance(runner, Mapping):
            raise ValueError("params 'nouns.runner' must be a mapping (runner, workers, dask_address, options)")
        return cls(
            spacy_model=section["spacy_model"],
            stoplist=tuple(stoplist),
            num_shards=positive_int("num_shards"),
            batch_size=positive_int("batch_size"),
            compounds=compounds,
            max_compound_words=positive_int("max_compound_words", 2)
            if "max_compound_words" in section
            else DEFAULT_MAX_COMPOUND_WORDS,
            runner=dict(runner),
        )


def build_nouns(params: NounsConfig, manifest: Path, out: Path, rejects: Path) -> dict[str, Any]:
    """Run the job on the world's captions; return the metrics (counts; timing goes to metrics/timings/)."""
    from pipeline.datasets.manifest import load_world

    timer = StageTimer("nouns")
    captions = load_world(manifest).captions()
    LOG.info(
        "read %d images and %d captions from %s",
        len(captions.images),
        sum(len(c) for c in captions.captions.values()) + len(captions.orphans),
        manifest,
    )
    counts = run_nouns_job(
        captions,
        out,
        rejects,
        spacy_model=params.spacy_model,
        stoplist=params.stoplist,
        num_shards=params.num_shards,
        runner_cfg=params.runner,
        batch_size=params.batch_size,
        compounds=params.compounds,
        max_compound_words=params.max_compound_words,
    )
    timer.write(captions_per_s=counts["captions"] / max(timer.seconds(), 1e-9))
    return {**counts, "runner": params.runner.get("runner", "direct")}


#: The stage's path options: (name, default, what).
OPTIONS = (
    ("manifest", paths.WORLD_MANIFEST, "world manifest"),
    ("out", paths.NOUNS, "nouns shards folder"),
    ("rejects", paths.NOUNS_REJECTS, "rejects folder"),
    ("metrics", paths.stage_metrics("nouns"), "metrics file"),
)


def job(args: argparse.Namespace) -> dict[str, Any]:
    params = NounsConfig.from_params(load_params("nouns", args.params))
    return build_nouns(params, args.manifest, args.out, args.rejects)


def summary(metrics: dict[str, Any], args: argparse.Namespace) -> str:
    return (
        f"nouns: {metrics['images']} images, {metrics['captions']} captions -> {metrics['noun_rows']} rows, "
        f"{metrics['unique_nouns']} unique nouns -> {args.out}\n"
        f"nouns: rejects: {rejects_summary(metrics['rejects'])} -> {args.rejects} (runner {metrics['runner']})"
    )


main = beam_stage_main("nouns", __doc__, OPTIONS, job, summary, input_errors=(SpacyModelError,))


if __name__ == "__main__":
    exit_process(main())
