"""Where the DVC pipeline keeps its data, artifacts, metrics and plots: the paths of ``dvc.yaml``.

Relative to the repository root, where every stage runs. Stages, command-line defaults and
tests name these instead of spelling the paths; ``tests/core/test_paths.py`` checks each one
against the deps and outputs of the stages that use it, so a rename in ``dvc.yaml`` alone fails.
"""

from __future__ import annotations

from pathlib import Path

# --- data/: datasets, in pipeline order ------------------------------------------------------------
#: The benchmarks converted from their official downloads (stage ``prepare``).
PREPARED = Path("data/prepared")
#: The world folder (stage ``world``): images, captions, benchmarks and the manifest naming them.
WORLD = Path("data/world")
#: The world's manifest, the file every stage after ``world`` opens.
WORLD_MANIFEST = WORLD / "manifest.json"
#: Noun shards extracted from the captions (stage ``nouns``).
NOUNS = Path("data/nouns")
#: Mined (region, noun) pair shards (stage ``mine``).
PAIRS = Path("data/pairs")
#: The folder of reject shard folders, one per Beam stage.
REJECTS = Path("data/rejects")
#: Captions the ``nouns`` stage could not read.
NOUNS_REJECTS = REJECTS / "nouns"
#: Rows the ``mine`` stage could not mine.
MINE_REJECTS = REJECTS / "mine"
#: The proposer's stored outputs on every benchmark (stage ``propose``).
PROPOSALS = Path("data/proposals")

# --- artifacts/: trained models --------------------------------------------------------------------
ARTIFACTS = Path("artifacts")
#: The pretrained CLIP every other model starts from (stage ``base_clip``).
CLIP_BASE = ARTIFACTS / "clip_base"
#: The mask proposer (stage ``proposer``).
PROPOSER = ARTIFACTS / "proposer"
#: ``CLIP_BASE`` fine-tuned on the mined pairs (stage ``finetune``).
CLIP_FT = ARTIFACTS / "clip_ft"
#: ``CLIP_BASE`` fine-tuned on the world's ground-truth masks instead (stage ``finetune_gt``).
CLIP_FT_GT = ARTIFACTS / "clip_ft_gt"
#: Mask prompt tuning of ``CLIP_BASE`` and of ``CLIP_FT`` (stages ``prompt_tune@base``, ``prompt_tune@ft``).
CLIP_MPT = ARTIFACTS / "clip_mpt"
CLIP_FT_MPT = ARTIFACTS / "clip_ft_mpt"
#: Learned text prompts on a frozen ``CLIP_BASE`` and ``CLIP_FT`` (stages ``text_prompts@base``, ``text_prompts@ft``).
CLIP_PROMPTS = ARTIFACTS / "clip_prompts"
CLIP_FT_PROMPTS = ARTIFACTS / "clip_ft_prompts"
#: ``CLIP_BASE`` pretrained for longer, the equal-compute control (stage ``base_clip_longer``).
CLIP_LONGER = ARTIFACTS / "clip_longer"


def adapter(clip_name: str) -> Path:
    """The Mask-Adapter trained on the CLIP ``clip_name`` (``base`` or ``ft``; stage ``mask_adapter@clip_name``)."""
    return ARTIFACTS / f"adapter_{clip_name}"


# --- metrics/ and plots/: what the stages measure ---------------------------------------------------
METRICS = Path("metrics")
#: Each stage's wall-clock record (:mod:`core.timing`); not a DVC output, as it differs run to run.
TIMINGS = METRICS / "timings"
#: What ``prepare`` counted, one file per benchmark.
PREPARE_METRICS = METRICS / "prepare"
#: One folder per evaluated variant (stages ``evaluate*``).
EVAL_METRICS = METRICS / "eval"
#: Crop classification accuracy, one file per CLIP (stage ``crops``).
CROP_METRICS = METRICS / "crops"
#: Every row's figures on the validation benchmark, one folder per row (stage ``evaluate_val``).
VAL_METRICS = METRICS / "val" / "metrics"
#: The headline figures of a run, what ``dvc metrics show`` and ``dvc exp show`` list (stage ``report``).
SUMMARY_METRICS = METRICS / "summary.json"
PLOTS = Path("plots")
#: One folder of pictures per evaluated variant (stages ``evaluate*``).
EVAL_PLOTS = PLOTS / "eval"
#: The mining stage's noun counts and sample pairs.
MINE_PLOTS = PLOTS / "mine"
#: The results table of every evaluation (stage ``report``).
RESULTS_REPORT = Path("reports/results.md")


def stage_metrics(stage: str) -> Path:
    """The metrics file of the training or Beam stage ``stage`` (``metrics/<stage>.json``)."""
    return METRICS / f"{stage}.json"


def loss_plot(stage: str) -> Path:
    """The loss curve of the training stage ``stage`` (``plots/<stage>/loss.csv``)."""
    return PLOTS / stage / "loss.csv"


def val_gauge_plot(stage: str) -> Path:
    """The validation gauge per epoch of the training stage ``stage`` (``plots/<stage>/val_gauge.csv``)."""
    return PLOTS / stage / "val_gauge.csv"
