"""Stages ``finetune``, ``finetune_gt`` and ``prompt_tune``: adapt CLIP to masked crops.

    python -m stages.clip_adaptation finetune            # image tower on the mined pairs  -> artifacts/clip_ft
    python -m stages.clip_adaptation finetune_gt         # same recipe, seen-class ground truth -> artifacts/clip_ft_gt
    python -m stages.clip_adaptation prompt_tune base    # mask prompts on the base CLIP -> artifacts/clip_mpt
    python -m stages.clip_adaptation prompt_tune ft      # mask prompts on the finetuned CLIP -> artifacts/clip_ft_mpt

``finetune`` and ``finetune_gt`` read the ``finetune`` params (the comparison is fair
only with one recipe); ``prompt_tune`` reads ``prompt_tune``. With
``distributed.nproc_per_node: N > 1`` the stage relaunches itself under
``torchrun --standalone`` as N processes; only rank 0 writes outputs.
"""

from __future__ import annotations

from pathlib import Path

from core import paths
from core.cli import add_params_option, exit_process, parser, run_command
from core.device import pick_device
from core.params import load_params
from core.timing import StageTimer
from model.clip import save_clip_folder
from pipeline.datasets.manifest import load_world
from pipeline.training.clip_adaptation import AdaptConfig, adapt_clip
from pipeline.training.distributed import DistributedConfig
from pipeline.training.mask_pairs import ground_truth_pairs, read_pairs
from pipeline.training.rng import seed_everything
from pipeline.training.stage import clip_process_group, finish_training_stage, run_here_or_under_torchrun

WORLD = paths.WORLD_MANIFEST
PAIRS = paths.PAIRS
CLIP_FOLDERS = {"base": paths.CLIP_BASE, "ft": paths.CLIP_FT}
OUTPUTS = {
    "finetune": paths.CLIP_FT,
    "finetune_gt": paths.CLIP_FT_GT,
    ("prompt_tune", "base"): paths.CLIP_MPT,
    ("prompt_tune", "ft"): paths.CLIP_FT_MPT,
}


def params_section(stage: str) -> str:
    return "prompt_tune" if stage == "prompt_tune" else "finetune"


def run(stage: str, variant: str | None, params_file: Path | None = None) -> dict:
    """Train and write the stage's outputs; under torchrun every process trains, rank 0 writes (the others
    return an empty summary)."""
    section = params_section(stage)
    params = dict(load_params(section, params_file))
    distributed = DistributedConfig.of_section(params, section)
    params.pop("distributed", None)
    device = pick_device(params.pop("device", "auto"))
    limit = params.pop("max_pairs", None)
    mode = "prompts" if stage == "prompt_tune" else "image"
    cfg = AdaptConfig.from_params(params, mode=mode)
    seed_everything(cfg.seed)
    world = load_world(WORLD)
    if stage == "finetune_gt":
        pairs = ground_truth_pairs(world.train_labels())
    else:
        pairs = read_pairs(PAIRS, world.images_dir, limit=limit)
    if stage != "prompt_tune":
        source, out = CLIP_FOLDERS["base"], OUTPUTS[stage]
    elif variant is None:
        raise ValueError("prompt_tune needs a variant (base or ft)")
    else:
        source, out = CLIP_FOLDERS[variant], OUTPUTS[(stage, variant)]
    name = f"{stage}_{variant}" if variant else stage
    timer = StageTimer(name)
    with clip_process_group(distributed, device, source) as (ranks, bundle):
        ranks.announce(
            f"{name}: {len(pairs)} pairs, {len({p.noun for p in pairs})} nouns, {cfg.epochs} epochs, "
            f"mode {cfg.mode}, from {source} on {bundle.device}"
        )
        log = adapt_clip(bundle, pairs, cfg, checkpoint_dir=Path(".checkpoints") / name, desc=name)
    if not ranks.is_main:
        return {}
    save_clip_folder(bundle, out)
    log.write(paths.loss_plot(name))
    summary = {
        "pairs": len(pairs),
        "nouns": len({p.noun for p in pairs}),
        "epochs": cfg.epochs,
        "steps": len(log.rows),
        "final_loss": round(log.epoch_means(cfg.epochs - 1)["loss"], 4),
    }
    pairs_per_s = len(pairs) * cfg.epochs / max(timer.seconds(), 1e-9)
    finish_training_stage(name, summary, timer, Path(".checkpoints") / name, pairs_per_s=pairs_per_s)
    print(f"{name}: wrote {out} in {summary['seconds']} s")
    return summary


def main(argv: list[str] | None = None) -> int:
    cli = parser("python -m stages.clip_adaptation", __doc__)
    cli.add_argument("stage", choices=["finetune", "finetune_gt", "prompt_tune"])
    cli.add_argument("variant", nargs="?", choices=sorted(CLIP_FOLDERS), help="prompt_tune only: which CLIP")
    add_params_option(cli)
    args = cli.parse_args(argv)
    if (args.stage == "prompt_tune") != (args.variant is not None):
        cli.error("prompt_tune needs a variant (base or ft); the other stages take none")

    def body() -> int:
        section = params_section(args.stage)
        nproc = DistributedConfig.of_section(load_params(section, args.params), section).nproc_per_node
        return run_here_or_under_torchrun(
            "stages.clip_adaptation", argv, nproc, lambda: run(args.stage, args.variant, args.params)
        )

    return run_command(args.stage, body)


if __name__ == "__main__":
    exit_process(main())
