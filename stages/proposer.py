"""Stage ``proposer``: train the mask-proposal model on the seen classes, then measure its proposals.

    python -m stages.proposer [--params params.yaml] [--clip artifacts/clip_base] [--out artifacts/proposer]

Reads the ``proposer`` params section, the world's training labels (seen classes
only) and the base CLIP, whose prompt-ensembled text embeddings of the seen class
names are the fixed class weights of the proposer's class head. Writes
``artifacts/proposer/`` (config, weights and that vocabulary, atomically),
``plots/proposer/loss.csv``, ``metrics/proposer.json`` (proposal recall and
oracle mIoU on the benchmark named in ``proposer.bench``, deterministic values
only) and ``metrics/timings/proposer.json``. Checkpoints go to
``.checkpoints/proposer/`` after every epoch but the last (a killed run resumes) and are
deleted after success. With ``distributed.nproc_per_node: N > 1`` the stage
relaunches itself under ``torchrun --standalone``: N processes train, rank 0
benchmarks and writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from core import paths
from core.cli import add_params_option, command, exit_process, parser
from core.device import pick_device, set_threads
from core.params import check_keys, load_params
from core.timing import StageTimer
from model.clip import load_clip_folder
from model.proposer import MaskProposer, Vocabulary, build_proposer, load_proposer_config, save_proposer
from model.text import TextClassifier
from pipeline.datasets.manifest import load_world
from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.evaluation.gt_gauge import class_subsets
from pipeline.evaluation.proposal_quality import QualityConfig, QualityReport, evaluate_proposals, format_report
from pipeline.training.distributed import DistributedConfig, process_group
from pipeline.training.loss_log import LossLog
from pipeline.training.proposer import (
    ProposerTrainConfig,
    StreamingTrainingSet,
    TrainingSet,
    load_training_set,
    train_proposer,
)
from pipeline.training.rng import seed_everything
from pipeline.training.stage import finish_training_stage, run_here_or_under_torchrun

WORLD = paths.WORLD_MANIFEST
DEFAULT_CLIP = paths.CLIP_BASE
DEFAULT_OUT = paths.PROPOSER
CHECKPOINTS = Path(".checkpoints/proposer")
LOSS_PLOT = paths.loss_plot("proposer")

TRAIN_KEYS = {f.name for f in dataclasses.fields(ProposerTrainConfig)}
STAGE_KEYS = {
    "config",
    "backbone_weights",
    "image_size",
    "streaming",
    "mask_threshold",
    "num_threads",
    "device",
    "bench",
    "distributed",
}
BENCH_KEYS = {"benchmark", "iou_threshold", "score_threshold", "batch_size", "limit"}
#: Quality figures copied into metrics/proposer.json (the per-class table stays in the bench's JSON).
METRIC_KEYS = (
    "recall",
    "recall_scored",
    "mean_best_iou",
    "oracle",
    "oracle_scored",
    "segments",
    "proposals_per_image",
    "scored_proposals_per_image",
    "images",
    "benchmark",
    "settings",
)


@dataclasses.dataclass(frozen=True)
class ProposerStageConfig:
    """The ``proposer`` params section, checked."""

    config: str
    train: ProposerTrainConfig
    quality: QualityConfig
    benchmark: str
    bench_limit: int | None
    backbone_weights: str | None
    image_size: int | None
    streaming: bool
    num_threads: int | None
    device: str
    distributed: DistributedConfig = DistributedConfig()

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml:proposer") -> ProposerStageConfig:
        bench = params.get("bench") or {}
        check_keys(
            {**params, **{f"bench.{k}": v for k, v in bench.items()}},
            TRAIN_KEYS | STAGE_KEYS | {f"bench.{k}" for k in BENCH_KEYS},
            source,
        )
        if "config" not in params:
            raise ValueError(f"{source}: missing 'config' (a proposer config name such as proposer-demo, or a path)")
        if params.get("streaming") and not params.get("image_size"):
            raise ValueError(f"{source}: streaming needs an image_size (every batch is resized to it)")
        threads = params.get("num_threads")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"{source}: num_threads must be a positive integer or null, got {threads!r}")
        try:
            train = ProposerTrainConfig.from_params({k: v for k, v in params.items() if k not in STAGE_KEYS})
            quality = QualityConfig(
                mask_threshold=float(params.get("mask_threshold", 0.4)),
                iou_threshold=float(bench.get("iou_threshold", 0.5)),
                score_threshold=float(bench.get("score_threshold", 0.5)),
                batch_size=int(bench.get("batch_size", 16)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None
        return cls(
            config=str(params["config"]),
            train=train,
            quality=quality,
            benchmark=str(bench.get("benchmark", "demo")),
            bench_limit=bench.get("limit"),
            backbone_weights=params.get("backbone_weights"),
            image_size=params.get("image_size"),
            streaming=bool(params.get("streaming", False)),
            num_threads=threads,
            device=str(params.get("device", "auto")),
            distributed=DistributedConfig.from_params(params.get("distributed"), f"{source}.distributed"),
        )


def class_vocabulary_names(world_classes: list[dict[str, Any]]) -> list[str]:
    """``"name, synonym, ..."`` for each class (the text classifier ensembles over synonyms)."""
    return [", ".join([c["name"], *c.get("synonyms", [])]) for c in world_classes]


def training_images(settings: ProposerStageConfig, labels: SegmentationDataset) -> TrainingSet | StreamingTrainingSet:
    """The training images, decoded up front or (``streaming``) batch by batch, on a thread per core."""
    threads = max(1, torch.get_num_threads())
    if not settings.streaming:
        return load_training_set(labels, image_size=settings.image_size, threads=threads)
    if settings.image_size is None:  # from_params refuses it: streaming resizes every batch to image_size
        raise ValueError("proposer: streaming needs an image_size")
    return StreamingTrainingSet(labels, settings.image_size, threads=max(4, threads))


def build_stage_proposer(settings: ProposerStageConfig, text_dim: int) -> MaskProposer:
    """The untrained proposer of ``settings.config``, its text width set to the CLIP's ``text_dim``, its initial
    weights drawn from ``settings.train.seed``."""
    config = load_proposer_config(settings.config)
    if config.text_dim != text_dim:
        print(f"proposer: text_dim {config.text_dim} of '{config.name}' set to the CLIP's {text_dim}")
        config = dataclasses.replace(config, text_dim=text_dim)
    torch.manual_seed(settings.train.seed)
    return build_proposer(config, settings.backbone_weights)


def metrics_and_extra(
    settings: ProposerStageConfig, model: MaskProposer, images: int, classes: int, log: LossLog, report: QualityReport
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics/proposer.json, the extra of the proposer folder's config)`` of a trained and benchmarked run
    on ``images`` training images of ``classes`` seen classes."""
    cfg = settings.train
    last = log.epoch_means(cfg.epochs - 1)
    metrics = {
        "config": model.config.name,
        "train_images": images,
        "classes": classes,
        "epochs": cfg.epochs,
        "steps": len(log.rows),
        "final_loss": round(last["loss"], 4),
        "quality": {k: report.metrics[k] for k in METRIC_KEYS},
    }
    extra = {
        "mask_threshold": settings.quality.mask_threshold,
        "quality_settings": asdict(settings.quality),
        "train": {**asdict(cfg), "images": images, "steps": len(log.rows)},
        "quality": {k: report.metrics[k] for k in ("benchmark", "recall", "recall_scored", "oracle")},
    }
    return metrics, extra


def run(settings: ProposerStageConfig, clip_dir: Path, out: Path, manifest: Path = WORLD) -> dict[str, Any]:
    """Train, benchmark, save; returns the metrics written to ``metrics/proposer.json``. Under torchrun
    every process trains and rank 0 benchmarks and writes (the others return an empty dict)."""
    timer = StageTimer("proposer")
    set_threads(settings.num_threads, "proposer.num_threads")
    device = pick_device(settings.device)
    with process_group(settings.distributed, device) as ranks:
        device = ranks.device(device)
        seed_everything(settings.train.seed)
        world = load_world(manifest)
        data = training_images(settings, world.train_labels())
        names = class_vocabulary_names(world.seen_classes)
        clip = load_clip_folder(clip_dir, device)
        text = TextClassifier(clip)(names).float()
        del clip

        model = build_stage_proposer(settings, int(text.shape[1]))
        cfg = settings.train
        ranks.announce(
            f"proposer: {model.config.name} on {len(data)} images ({len(names)} seen classes), {cfg.epochs} "
            f"epochs of batch {cfg.batch_size} on {device}, {torch.get_num_threads()} threads"
        )
        train_started = timer.seconds()
        log = train_proposer(model, data, text, cfg, device=device, checkpoint_dir=CHECKPOINTS)
        train_seconds = timer.seconds() - train_started
    if not ranks.is_main:
        return {}
    log.write(LOSS_PLOT)
    model.vocabulary = Vocabulary(tuple(names), text.detach().cpu())

    dataset = world.benchmark(settings.benchmark)
    report = evaluate_proposals(
        model,
        dataset,
        settings.quality,
        limit=settings.bench_limit,
        subsets=class_subsets(dataset.class_names, world.classes),
    )
    print(format_report(report))
    metrics, extra = metrics_and_extra(settings, model, len(data), len(names), log, report)
    save_proposer(model, out, extra=extra)
    rates = {"train_seconds": train_seconds, "bench_images_per_s": report.images_per_s}
    return finish_training_stage("proposer", metrics, timer, CHECKPOINTS, **rates)


@command("proposer")
def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.proposer", __doc__)
    add_params_option(cli)
    cli.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="CLIP folder giving the text embeddings")
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output proposer folder")
    cli.add_argument("--world", type=Path, default=WORLD, help="world manifest")
    args = cli.parse_args(argv)
    timer = StageTimer("proposer")
    settings = ProposerStageConfig.from_params(load_params("proposer", args.params))

    def train() -> None:
        if run(settings, args.clip, args.out, args.world):
            print(f"proposer: wrote {args.out} in {timer.seconds():.0f} s")

    return run_here_or_under_torchrun("stages.proposer", argv, settings.distributed.nproc_per_node, train)


if __name__ == "__main__":
    exit_process(main())
