"""Stage ``text_prompts``: zsseg.baseline's learned text prompts on a frozen CLIP.

    python -m stages.text_prompts base    # artifacts/clip_base -> artifacts/clip_prompts
    python -m stages.text_prompts ft      # artifacts/clip_ft   -> artifacts/clip_ft_prompts

Reads the ``text_prompts`` params section, the world's training labels (seen classes only)
and the CLIP folder; writes a new CLIP folder (the input's files hard-linked, plus
``text_prompts.safetensors``), ``metrics/text_prompts_<clip>.json``,
``plots/text_prompts_<clip>/loss.csv`` and the wall time to
``metrics/timings/text_prompts_<clip>.json``. With ``distributed.nproc_per_node: N > 1`` the
stage relaunches itself under ``torchrun --standalone`` as N processes; only rank 0 writes outputs.
"""

from __future__ import annotations

from pathlib import Path

from core import paths
from core.cli import exit_process
from core.device import pick_device, set_threads
from core.params import load_params
from core.timing import StageTimer
from model.clip import derive_clip_folder
from pipeline.datasets.manifest import load_world
from pipeline.training.distributed import DistributedConfig
from pipeline.training.loss_log import LossLog
from pipeline.training.mask_pairs import MaskPair, ground_truth_pairs
from pipeline.training.rng import seed_everything
from pipeline.training.stage import clip_process_group, clip_stage_main, finish_training_stage
from pipeline.training.text_prompts import TextPromptConfig, learn_text_prompts, sample_per_class

WORLD = paths.WORLD_MANIFEST
#: clip_name -> (input CLIP folder, output CLIP folder)
FOLDERS = {
    "base": (paths.CLIP_BASE, paths.CLIP_PROMPTS),
    "ft": (paths.CLIP_FT, paths.CLIP_FT_PROMPTS),
}


def seen_class_names(world) -> list[str]:
    """The seen classes as ``"name, synonym, ..."``, in the training labels' order."""
    return [", ".join([entry["name"], *entry.get("synonyms", [])]) for entry in world.seen_classes]


def seen_pairs(world_path: Path) -> tuple[list[str], list[MaskPair]]:
    """The seen class names and the ground-truth pairs of the world's training labels (the same classes)."""
    world = load_world(world_path)
    labels = world.train_labels()
    class_names = seen_class_names(world)
    if len(class_names) != len(labels.class_names):
        raise ValueError(
            f"{world_path}: {len(class_names)} seen classes but the training labels have {len(labels.class_names)}"
        )
    return class_names, ground_truth_pairs(labels)


def training_summary(log: LossLog, pairs: list[MaskPair], class_names: list[str], cfg: TextPromptConfig) -> dict:
    """The stage's metrics: what it trained on and the last epoch's mean loss and accuracy."""
    last = log.epoch_means(cfg.epochs - 1)
    return {
        "segments": len(pairs),
        "classes": len(class_names),
        "samples": len(sample_per_class(pairs, cfg.samples_per_class, cfg.seed)),
        "epochs": cfg.epochs,
        "steps": len(log.rows),
        "final_loss": round(last["loss"], 4),
        "final_accuracy": round(100 * last["accuracy"], 2),
    }


def run(
    clip_name: str,
    params_file: Path | None = None,
    *,
    world_path: Path = WORLD,
    folders: tuple[Path, Path] | None = None,
) -> dict:
    """Learn the prompts and write the stage's outputs; under torchrun every process trains, rank 0 writes (the
    others return an empty summary)."""
    params = dict(load_params("text_prompts", params_file))
    distributed = DistributedConfig.of_section(params, "text_prompts")
    params.pop("distributed", None)
    device = pick_device(params.pop("device", "auto"))
    set_threads(params.pop("threads", None), "text_prompts.threads")
    cfg = TextPromptConfig.from_params(params)
    source, out = folders or FOLDERS[clip_name]
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: CLIP folder not found")
    name = f"text_prompts_{clip_name}"
    timer = StageTimer(name)
    seed_everything(cfg.seed)
    class_names, pairs = seen_pairs(world_path)
    checkpoints = Path(".checkpoints") / name
    with clip_process_group(distributed, device, source) as (ranks, bundle):
        ranks.announce(
            f"{name}: {len(pairs)} ground-truth segments of {len(class_names)} seen classes, "
            f"{cfg.samples_per_class or 'all'} per class, {cfg.epochs} epochs, from {source} on {bundle.device}"
        )
        log = learn_text_prompts(bundle, pairs, class_names, cfg, checkpoint_dir=checkpoints, desc=name)
    if not ranks.is_main:
        return {}
    assert bundle.text_prompts is not None  # learn_text_prompts made them
    derive_clip_folder(source, out, text_prompts=bundle.text_prompts, clip_model=bundle.model)
    log.write(paths.loss_plot(name))
    summary = training_summary(log, pairs, class_names, cfg)
    finish_training_stage(name, summary, timer, checkpoints, steps_per_s=len(log.rows) / max(timer.seconds(), 1e-9))
    print(
        f"{name}: wrote {out} in {summary['seconds']} s (final loss {summary['final_loss']}, "
        f"train accuracy {summary['final_accuracy']} %)"
    )
    return summary


main = clip_stage_main("text_prompts", __doc__, FOLDERS, "which CLIP learns the prompts", run)


if __name__ == "__main__":
    exit_process(main())
