"""Stage ``mask_adapter``: train a Mask-Adapter on a frozen CLIP and the frozen proposer.

    python -m stages.mask_adapter base     # on artifacts/clip_base -> artifacts/adapter_base
    python -m stages.mask_adapter ft       # on artifacts/clip_ft   -> artifacts/adapter_ft

Reads the ``mask_adapter`` params section (the architecture keys of
:class:`model.mask_adapter.MaskAdapterConfig`, the recipe keys of
:class:`pipeline.training.mask_adapter.AdapterTrainConfig`, ``threads`` and ``device``),
the world's training labels (seen classes; resized to ``image_size`` when set, and decoded
and prepared batch by batch with ``streaming``, as the proposer's) and, with ``instance_masks``,
its thing instances (the demo world's ``truth/instances_train.json``; a world without them
trains on one mask per class, and says so), the CLIP and
``artifacts/proposer``. With
``clip_model`` (an open_clip name such as ``convnext_large_d_320``, weights from
``clip_pretrained``) the ``base`` adapter reads that CLIP instead of the pipeline's base CLIP,
as in the paper, and keeps it in its folder. Writes
``artifacts/adapter_<clip>/``, ``plots/mask_adapter_<clip>/loss.csv``,
``metrics/mask_adapter_<clip>.json`` and ``metrics/timings/mask_adapter_<clip>.json``.
With ``val_benchmark`` (``val``), the adapter classifies that benchmark's ground-truth segments after
every epoch (mean per-class top-1 %, the crops stage's gauge) into ``plots/mask_adapter_<clip>/val_gauge.csv``:
the curve that the schedule is chosen on (docs/tuning.md); a resumed run's curve starts at its epoch.
Checkpoints go to ``.checkpoints/mask_adapter_<clip>/`` after every epoch but the last
(a killed run resumes) and are deleted after success. With ``distributed.nproc_per_node: N > 1``
the stage relaunches itself under ``torchrun --standalone`` as N processes; only rank 0 writes
outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from core import paths
from core.cli import exit_process
from core.device import pick_device, set_threads
from core.io import atomic_write_text
from core.params import check_keys, load_params
from core.timing import StageTimer
from model.clip import ClipBundle, build_clip, load_clip_folder
from model.mask_adapter import OWN_CLIP_DIR, MaskAdapter, MaskAdapterConfig, clip_fingerprint, save_mask_adapter
from model.one_pass import OnePassSegmenter
from model.proposer import MaskProposer, load_proposer
from model.scoring import CLIP_LOGIT_SCALE
from model.text import TextClassifier
from pipeline.datasets.manifest import World, load_world
from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.evaluation.gt_gauge import class_subsets, one_pass_accuracy
from pipeline.training.distributed import DistributedConfig, process_group
from pipeline.training.instances import WithInstances, world_instances
from pipeline.training.loss_log import LossLog
from pipeline.training.mask_adapter import (
    AdapterData,
    AdapterTrainConfig,
    BatchPreparer,
    StreamingData,
    prepare_data,
    train_adapter,
)
from pipeline.training.proposer import StreamingTrainingSet, TrainingSet, load_training_set
from pipeline.training.rng import seed_everything
from pipeline.training.stage import clip_stage_main, finish_training_stage

WORLD = paths.WORLD_MANIFEST
PROPOSER = paths.PROPOSER
CLIPS = {"base": paths.CLIP_BASE, "ft": paths.CLIP_FT}
ARCHITECTURE_KEYS = {f.name for f in dataclasses.fields(MaskAdapterConfig)} - {"clip_dim"}
RECIPE_KEYS = {f.name for f in dataclasses.fields(AdapterTrainConfig)}
RUNTIME_KEYS = {"threads", "device", "distributed"}
OWN_CLIP_KEYS = {"clip_model", "clip_pretrained"}
DATA_KEYS = {"image_size", "streaming", "instance_masks", "val_benchmark"}
KNOWN_KEYS = ARCHITECTURE_KEYS | RECIPE_KEYS | RUNTIME_KEYS | OWN_CLIP_KEYS | DATA_KEYS


def split_params(params: dict[str, Any], clip_dim: int) -> tuple[MaskAdapterConfig, AdapterTrainConfig]:
    """The section's architecture and recipe, checked (unknown keys are an error)."""
    check_keys(params, KNOWN_KEYS, "params.yaml:mask_adapter")
    architecture = MaskAdapterConfig(clip_dim=clip_dim, **{k: v for k, v in params.items() if k in ARCHITECTURE_KEYS})
    return architecture, AdapterTrainConfig.from_params({k: v for k, v in params.items() if k in RECIPE_KEYS})


def adapter_clip(clip_name: str, params: dict[str, Any], device: torch.device) -> tuple[ClipBundle, bool]:
    """The CLIP the adapter reads and whether it is the adapter's own (``clip_model`` on the ``base`` adapter)."""
    if clip_name == "base" and params.get("clip_model"):
        # the paper's road: a CLIP of the adapter's own (ConvNeXt), not the pipeline's base CLIP
        return build_clip(params["clip_model"], params.get("clip_pretrained") or "", device=device), True
    return load_clip_folder(CLIPS[clip_name], device), False


def training_images(train: SegmentationDataset, params: dict[str, Any]) -> TrainingSet | StreamingTrainingSet:
    """The training images: decoded up front, or batch by batch with ``streaming`` (which needs an ``image_size``)."""
    image_size = params.get("image_size")
    if not params.get("streaming"):
        return load_training_set(train, image_size=image_size)
    if not image_size:
        raise ValueError("params.yaml:mask_adapter: streaming needs an image_size (every batch is resized to it)")
    return StreamingTrainingSet(train, int(image_size))


def with_instances(
    images: TrainingSet | StreamingTrainingSet, world: World, params: dict[str, Any], log: Callable[[str], None]
) -> TrainingSet | StreamingTrainingSet | WithInstances:
    """``images`` with their thing instances (``instance_masks``, the reference's panoptic targets) where the world
    has them; otherwise as they are: one ground-truth mask per class."""
    if not params.get("instance_masks", True):
        return images
    maps = world_instances(world, log)
    return images if maps is None else WithInstances(images, maps)


def val_gauge(
    bundle: ClipBundle, adapter: MaskAdapter, world: World, benchmark: str, rows: list[dict[str, Any]]
) -> Callable[[int], None]:
    """The after-epoch hook appending the adapter's gauge on ``benchmark``'s ground-truth segments to ``rows``."""
    dataset = world.benchmark(benchmark)
    subsets = class_subsets(list(dataset.class_names), world.classes)

    def measure(epoch: int) -> None:
        summary = one_pass_accuracy(OnePassSegmenter(None, bundle, adapter=adapter), dataset, subsets=subsets)
        rows.append({"epoch": epoch, **{key: summary.get(key) for key in ("mean", "seen", "unseen")}})

    return measure


def gauge_csv(rows: list[dict[str, Any]]) -> str:
    lines = ["epoch,val_gauge,val_gauge_seen,val_gauge_unseen"]
    lines += [f"{r['epoch']},{r['mean']},{r['seen']},{r['unseen']}" for r in rows]
    return "\n".join(lines) + "\n"


def training_summary(data: AdapterData | StreamingData, log: LossLog, epochs: int) -> dict[str, Any]:
    """``metrics/mask_adapter_<clip>.json``: the images, epochs, steps and last epoch's mean losses, and (data
    prepared up front) how many segments there were and how many have a matching proposal."""
    last = log.epoch_means(epochs - 1)
    summary = {
        "images": len(data),
        "epochs": epochs,
        "steps": len(log.rows),
        **{f"final_{key}": round(last[key], 4) for key in ("loss", "ce", "consistency")},
    }
    if isinstance(data, AdapterData):
        summary["segments"] = sum(len(labels) for labels in data.segment_labels)
        summary["segments_with_match"] = sum(sum(len(c) > 0 for c in image) for image in data.candidates)
    return summary


def frozen_proposer(
    base_text: torch.Tensor | None, class_names: Sequence[str], device: torch.device
) -> tuple[MaskProposer, torch.Tensor]:
    """``artifacts/proposer`` and the embeddings of ``class_names`` it scores against: those of the text tower it
    was trained with, the pipeline's base CLIP (``base_text`` when already computed, else embedded here)."""
    proposer = load_proposer(PROPOSER, device)
    if base_text is None:
        base_text = TextClassifier(load_clip_folder(CLIPS["base"], device))(class_names)
    return proposer, base_text


def matched_note(summary: dict[str, Any]) -> str:
    """How many segments have a matching proposal, when the summary counts them."""
    if "segments" not in summary:
        return ""
    return f" ({summary['segments_with_match']} of {summary['segments']} segments have a matching proposal)"


def run(clip_name: str, params_file: Path | None = None) -> dict[str, Any]:
    """Train the adapter and write the stage's outputs; under torchrun every process trains, rank 0 writes (the
    others return an empty summary)."""
    params = dict(load_params("mask_adapter", params_file))
    check_keys(params, KNOWN_KEYS, "params.yaml:mask_adapter")
    distributed = DistributedConfig.of_section(params, "mask_adapter")
    device = pick_device(params.get("device", "auto"))
    set_threads(params.get("threads"), "mask_adapter.threads")
    name = f"mask_adapter_{clip_name}"
    out = paths.adapter(clip_name)
    timer = StageTimer(name)
    for folder in (CLIPS[clip_name], PROPOSER):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not found (run the stage that writes it first)")
    with process_group(distributed, device) as ranks:
        device = ranks.device(device)
        bundle, own_clip = adapter_clip(clip_name, params, device)
        architecture, cfg = split_params(params, bundle.embed_dim)
        seed_everything(cfg.seed)
        world = load_world(WORLD)
        train = world.train_labels()
        training_set = with_instances(training_images(train, params), world, params, ranks.announce)
        text_emb = TextClassifier(bundle)(train.class_names)
        adapter = MaskAdapter(architecture).to(device)
        dense_clip = adapter.dense_clip(bundle.model)
        proposer, proposer_text = frozen_proposer(text_emb if not own_clip else None, train.class_names, device)
        ranks.announce(
            f"{name}: {len(training_set)} images, {len(train.class_names)} seen classes, "
            f"{sum(p.numel() for p in adapter.parameters()):,} adapter parameters, on {device}"
        )
        prepare = BatchPreparer(dense_clip, bundle.mean, bundle.std, proposer, proposer_text, cfg)
        per_batch = params.get("streaming") or cfg.augment  # augmented draws need a fresh CLIP pass each
        data = StreamingData(training_set, prepare) if per_batch else prepare_data(training_set, prepare)
        identity = f"{clip_fingerprint(bundle.model)}:{dataclasses.asdict(architecture)}"
        checkpoints = Path(".checkpoints") / name
        gauge: list[dict[str, Any]] = []
        benchmark = params.get("val_benchmark")
        if benchmark and benchmark not in world.benchmark_names:
            ranks.announce(f"{name}: the world has no benchmark {benchmark!r}: no validation gauge")
            benchmark = None
        log = train_adapter(
            adapter,
            dense_clip,
            data,
            text_emb,
            CLIP_LOGIT_SCALE,
            cfg,
            checkpoint_dir=checkpoints,
            identity=identity,
            desc=name,
            after_epoch=val_gauge(bundle, adapter, world, benchmark, gauge) if benchmark else None,
        )
    if not ranks.is_main:
        return {}
    save_mask_adapter(
        adapter,
        out,
        clip_model=bundle.model,
        own_clip=bundle if own_clip else None,
        extra={"clip": OWN_CLIP_DIR if own_clip else str(CLIPS[clip_name])},
    )
    log.write(paths.loss_plot(name))
    summary = training_summary(data, log, cfg.epochs)
    atomic_write_text(paths.val_gauge_plot(name), gauge_csv(gauge))  # the header alone without a val benchmark
    if gauge:
        best = max(gauge, key=lambda row: (row["mean"], -row["epoch"]))
        summary.update(val_gauge=gauge[-1]["mean"], val_gauge_best=best["mean"], val_gauge_best_epoch=best["epoch"])
    images_per_s = len(data) * cfg.epochs / max(timer.seconds(), 1e-9)
    finish_training_stage(name, summary, timer, checkpoints, images_per_s=images_per_s)
    print(f"{name}: wrote {out} in {summary['seconds']} s{matched_note(summary)}")
    return summary


main = clip_stage_main("mask_adapter", __doc__, CLIPS, "which CLIP the adapter reads", run)


if __name__ == "__main__":
    exit_process(main())
