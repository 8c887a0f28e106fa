"""Stage ``base_clip``: the CLIP every later stage starts from, as an open_clip local folder.

With ``clip.pretrained`` empty (the demo) a CLIP described by ``clip.model`` is pretrained
from scratch on the world's images and captions; otherwise the named pretrained model is
loaded from local files and materialised into the same folder format.

    python -m stages.base_clip [--params params.yaml] [--out artifacts/clip_base]

With ``clip.pretrain.distributed.nproc_per_node: N > 1`` the pretraining runs as N
processes: the stage relaunches itself under ``torchrun --standalone``, and rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

from core import paths
from core.cli import add_params_option, command, exit_process, parser
from core.device import pick_device
from core.io import atomic_write_text
from core.params import load_params
from core.timing import StageTimer
from model.clip import DEFAULT_TEMPLATES, build_clip, save_clip_folder
from model.text import load_templates
from pipeline.datasets.images import load_resized
from pipeline.datasets.manifest import load_world
from pipeline.training.clip_pretrain import PretrainConfig, pretrain_clip
from pipeline.training.distributed import DistributedConfig, process_group
from pipeline.training.rng import seed_everything
from pipeline.training.stage import finish_training_stage, run_here_or_under_torchrun

WORLD = paths.WORLD_MANIFEST
DEFAULT_OUT = paths.CLIP_BASE
CHECKPOINTS = Path(".checkpoints/base_clip")
LOSS_PLOT = paths.loss_plot("base_clip")
METRICS = paths.stage_metrics("base_clip")


def distributed_settings(clip: dict) -> DistributedConfig:
    """``clip.pretrain.distributed``: the processes of the pretraining (one when there is none: ``pretrained``)."""
    pretrain = clip.get("pretrain") or {}
    settings = DistributedConfig.from_params(pretrain.get("distributed"), "params.yaml:clip.pretrain.distributed")
    return DistributedConfig() if clip.get("pretrained") else settings


def run(clip: dict, out: Path, manifest: Path = WORLD) -> dict:
    """Pretrain (or load) and write the base CLIP; under torchrun every process pretrains, rank 0 writes (the
    others return an empty summary)."""
    device = pick_device(clip.get("device", "auto"))
    seed = int(clip.get("seed", 0))
    distributed = distributed_settings(clip)
    seed_everything(seed)
    timer = StageTimer("base_clip")
    with process_group(distributed, device) as ranks:
        device = ranks.device(device)
        bundle = build_clip(
            clip["model"],
            clip.get("pretrained", "") or "",
            device=device,
            precision=clip.get("precision", "fp32"),
            seed=seed,
        )
        bundle.templates = clip.get("templates", DEFAULT_TEMPLATES)
        try:  # an unknown set fails here, not in every stage downstream
            load_templates(bundle.templates)
        except (OSError, ValueError) as exc:
            raise ValueError(f"params.yaml:clip.templates: {exc}") from None
        summary = {
            "model": clip["model"],
            "pretrained": clip.get("pretrained", "") or None,
            "parameters": sum(p.numel() for p in bundle.model.parameters()),
        }
        if not clip.get("pretrained"):
            pretrain = {k: v for k, v in (clip.get("pretrain") or {}).items() if k != "distributed"}
            cfg = PretrainConfig.from_params(pretrain, seed)
            world = load_world(manifest)
            captions = world.captions()
            ids = sorted(captions.captions)
            ranks.announce(
                f"base_clip: pretraining {clip['model']} on {len(ids)} images for {cfg.epochs} epochs on {device}"
            )
            images = load_resized([captions.images[i].path for i in ids], bundle.image_size * 2)
            texts = [[c.text for c in captions.captions[i]] for i in ids]
            log = pretrain_clip(bundle, images, texts, cfg, checkpoint_dir=CHECKPOINTS)
    if not ranks.is_main:
        return {}
    if not clip.get("pretrained"):
        log.write(LOSS_PLOT)
        last = log.epoch_means(cfg.epochs - 1)
        summary.update(images=len(ids), epochs=cfg.epochs, steps=len(log.rows), final_loss=round(last["loss"], 4))
    else:  # no training, but dvc.yaml declares the loss plot either way: its header only
        atomic_write_text(LOSS_PLOT, "step,epoch,lr,loss\n")
    save_clip_folder(bundle, out)
    return finish_training_stage("base_clip", summary, timer, CHECKPOINTS)


@command("base_clip")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg base-clip", __doc__)
    add_params_option(cli)
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output CLIP folder")
    args = cli.parse_args(argv)
    clip = load_params("clip", args.params)

    def train() -> None:
        summary = run(clip, args.out)
        if summary:
            print(f"base_clip: wrote {args.out} in {summary['seconds']} s")

    return run_here_or_under_torchrun("stages.base_clip", argv, distributed_settings(clip).nproc_per_node, train)


if __name__ == "__main__":
    exit_process(main())
