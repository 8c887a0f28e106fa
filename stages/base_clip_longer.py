"""Stage ``base_clip_longer``: the equal-compute control of ``finetune``.

Continues ``base_clip``'s contrastive pretraining (whole images and their captions, both
towers, the same augmentation) from ``artifacts/clip_base`` for exactly as many optimizer
steps as ``finetune`` takes, with finetune's batch size: finetune's epochs × (its pairs //
its batch size), the pairs read as finetune reads them (``finetune.max_pairs`` included).
A CLIP that beats this one gains from the mined mask–noun pairs, not from more training.

    python -m stages.base_clip_longer [--params params.yaml] [--out artifacts/clip_longer]

Reads its own section ``base_clip_longer`` (schedule, augmentation, seed) and the
``finetune`` section (the step budget). With ``base_clip_longer.distributed.nproc_per_node:
N > 1`` the stage relaunches itself under ``torchrun --standalone`` as N processes (the
batch stays finetune's, split across them); only rank 0 writes outputs.
"""

from __future__ import annotations

from pathlib import Path

from core import paths
from core.cli import add_params_option, command, exit_process, parser
from core.device import pick_device
from core.params import load_params
from core.timing import StageTimer
from model.clip import save_clip_folder
from pipeline.datasets.images import load_resized
from pipeline.datasets.manifest import load_world
from pipeline.training.clip_adaptation import AdaptConfig
from pipeline.training.clip_pretrain import continued_config, pretrain_clip
from pipeline.training.distributed import DistributedConfig
from pipeline.training.mask_pairs import read_pairs
from pipeline.training.rng import seed_everything
from pipeline.training.stage import clip_process_group, finish_training_stage, run_here_or_under_torchrun

NAME = "base_clip_longer"
WORLD = paths.WORLD_MANIFEST
PAIRS = paths.PAIRS
SOURCE = paths.CLIP_BASE
DEFAULT_OUT = paths.CLIP_LONGER
CHECKPOINTS = Path(".checkpoints") / NAME
LOSS_PLOT = paths.loss_plot(NAME)
METRICS = paths.stage_metrics(NAME)


def finetune_budget(finetune: dict, num_pairs: int) -> tuple[int, int]:
    """``(steps, batch_size)`` of the ``finetune`` stage on ``num_pairs`` pairs, from its params section."""
    params = {
        k: v for k, v in finetune.items() if k not in ("device", "max_pairs", "distributed")
    }  # read by its stage itself
    cfg = AdaptConfig.from_params(params, mode="image")
    return cfg.total_steps(num_pairs), cfg.batch_size


def run(
    section: dict, finetune: dict, out: Path, *, manifest: Path = WORLD, pairs_dir: Path = PAIRS, source: Path = SOURCE
) -> dict:
    """Train and write the stage's outputs; under torchrun every process trains, rank 0 writes (the others
    return an empty summary)."""
    timer = StageTimer(NAME)
    params = dict(section)
    distributed = DistributedConfig.of_section(params, NAME)
    params.pop("distributed", None)
    device = pick_device(params.pop("device", "auto"))
    image_side = params.pop("image_side", None)
    world = load_world(manifest)
    num_pairs = len(read_pairs(pairs_dir, world.images_dir, limit=finetune.get("max_pairs")))
    steps, batch_size = finetune_budget(finetune, num_pairs)
    captions = world.captions()
    ids = sorted(captions.captions)
    cfg = continued_config(params, steps=steps, batch_size=batch_size, num_images=len(ids), what=NAME)
    seed_everything(cfg.seed)
    with clip_process_group(distributed, device, source) as (ranks, bundle):
        side = int(image_side) if image_side is not None else bundle.image_size * 2
        ranks.announce(
            f"{NAME}: {steps} steps of {batch_size} images (finetune: {num_pairs} pairs), continuing {source} "
            f"on {len(ids)} images with their captions, on {bundle.device}"
        )
        images = load_resized([captions.images[i].path for i in ids], side)
        texts = [[c.text for c in captions.captions[i]] for i in ids]
        log = pretrain_clip(bundle, images, texts, cfg, checkpoint_dir=CHECKPOINTS, desc=NAME)
    if not ranks.is_main:
        return {}
    save_clip_folder(bundle, out)
    log.write(LOSS_PLOT)
    last_epoch = int(log.rows[-1]["epoch"])
    summary = {
        "source": str(source),
        "images": len(ids),
        "finetune_pairs": num_pairs,
        "batch_size": batch_size,
        "steps": len(log.rows),
        "epochs": cfg.epochs,
        "final_loss": round(log.epoch_means(last_epoch)["loss"], 4),
    }
    return finish_training_stage(NAME, summary, timer, CHECKPOINTS)


@command(NAME)
def main(argv: list[str] | None = None) -> int:
    cli = parser(f"python -m stages.{NAME}", __doc__)
    add_params_option(cli)
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output CLIP folder")
    args = cli.parse_args(argv)
    section = load_params(NAME, args.params)

    def train() -> None:
        summary = run(section, load_params("finetune", args.params), args.out)
        if summary:
            print(f"{NAME}: {summary['steps']} steps, wrote {args.out} in {summary['seconds']} s")

    nproc = DistributedConfig.of_section(section, NAME).nproc_per_node
    return run_here_or_under_torchrun(f"stages.{NAME}", argv, nproc, train)


if __name__ == "__main__":
    exit_process(main())
