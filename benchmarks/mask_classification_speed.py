"""Speed of classifying proposals: the crop path (OVSeg), maskpool and the Mask-Adapter (one CLIP pass per image).

One process, the same images and the same proposals for the three paths, at Q = 24 and
Q = 100 proposals per image. For each (model size, Q, path) it prints images/s,
milliseconds per image and the ratio to the crop path's images/s. Text embeddings are
computed once before timing (every path shares them); proposals are fixed random boxes
(the cost does not depend on what they cover), drawn from ``--seed``.

Sizes:

* ``demo``: the demo CLIP of ``--clip`` (default ``artifacts/clip_base``; random
  ``ovseg-tiny-vit`` weights when the folder is missing) and the adapter of ``--adapter``
  (default ``artifacts/adapter_base``; a random one sized by params.yaml's ``mask_adapter``
  when missing), on the demo benchmark's 128-px images (random ones without a world);
* ``vit-b16``: open_clip ViT-B-16 with random weights, 512 × 512 images, the paper's
  adapter widths (hidden 768, K 16), attention pooling;
* ``convnext-b``: open_clip convnext_base_w_320 with random weights, 512 × 512 images, the
  paper's adapter widths, mean pooling.

Random weights measure speed only. ``--precision fp32,bf16`` times both precisions in
turns (fp32, bf16, fp32, ...: a shared machine slows both alike) and adds each path's
bf16 ÷ fp32 images/s; bf16 is :func:`model.precision.inference_autocast`, as in the
``evaluate`` and ``mine`` stages.

    python benchmarks/mask_classification_speed.py [--sizes demo,vit-b16,convnext-b] [--proposals 24,100]
        [--paths crops,maskpool,adapter] [--images 32] [--real-images 1] [--repeats 2] [--threads 2]
        [--precision fp32,bf16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.params import load_params
from model.clip import ClipBundle, build_clip, load_clip_folder
from model.mask_adapter import MaskAdapter, MaskAdapterConfig, load_mask_adapter
from model.one_pass import OnePassSegmenter
from model.precision import INFERENCE_PRECISIONS, inference_autocast
from model.proposal_segmenter import image_to_tensor
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.manifest import load_world

REAL = {"vit-b16": ("ViT-B-16", "attention"), "convnext-b": ("convnext_base_w_320", "mean")}
PATHS = ("crops", "maskpool", "adapter")


def random_boxes(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` bool masks ``[count, H, W]``, each a random box covering 2–50 % of each side."""
    masks = torch.zeros(count, height, width, dtype=torch.bool)
    for mask in masks:
        h = int(torch.randint(max(1, height // 50), max(2, height // 2), (1,), generator=generator))
        w = int(torch.randint(max(1, width // 50), max(2, width // 2), (1,), generator=generator))
        top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
        mask[top : top + h, left : left + w] = True
    return masks


def demo_images(count: int, manifest: Path) -> list[torch.Tensor]:
    if manifest.is_file():
        dataset = load_world(manifest).benchmark("demo")
        return [image_to_tensor(dataset.load(key).image, torch.device("cpu")) for key in dataset.keys()[:count]]
    rng = np.random.default_rng(0)
    return [
        image_to_tensor(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), torch.device("cpu")) for _ in range(count)
    ]


def demo_models(args) -> tuple[ClipBundle, MaskAdapter, str]:
    clip = (
        load_clip_folder(args.clip, "cpu") if args.clip.is_dir() else build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    )
    if args.adapter.is_dir() and args.clip.is_dir():
        return clip, load_mask_adapter(args.adapter, clip.model), "attention"
    section = load_params("mask_adapter")
    keys = ("num_maps", "hidden", "blocks", "mask_channels", "mask_prior", "pooling", "attention_depth")
    config = MaskAdapterConfig(clip_dim=clip.embed_dim, **{k: section[k] for k in keys if k in section})
    return clip, MaskAdapter(config).eval(), config.pooling


def real_models(size: str) -> tuple[ClipBundle, MaskAdapter, str]:
    name, pooling = REAL[size]
    clip = build_clip(name, device="cpu", seed=0)
    adapter = MaskAdapter(MaskAdapterConfig(clip_dim=clip.embed_dim, pooling=pooling)).eval()
    return clip, adapter, pooling


def time_path(classify, images, masks, text, repeats: int, precisions: list[str]) -> dict[str, float]:
    """Best seconds per image of each precision over ``repeats`` runs of ``classify(images, masks, text)``,
    the precisions in turns, after a small warm-up in each."""
    best = {precision: float("inf") for precision in precisions}
    for precision in precisions:
        with inference_autocast(precision, torch.device("cpu")), torch.no_grad():
            classify(images[:1], [masks[0][:2]], text)
    for _ in range(repeats):
        for precision in precisions:
            with inference_autocast(precision, torch.device("cpu")), torch.no_grad():
                start = time.perf_counter()
                classify(images, masks, text)
                best[precision] = min(best[precision], (time.perf_counter() - start) / len(images))
    return best


def run_size(size: str, args) -> list[tuple]:
    if size == "demo":
        clip, adapter, pooling = demo_models(args)
        images = demo_images(args.images, args.manifest)
    else:
        clip, adapter, pooling = real_models(size)
        rng = np.random.default_rng(0)
        images = [
            image_to_tensor(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), torch.device("cpu"))
            for _ in range(args.real_images)
        ]
    segmenters = {
        "crops": TwoStageSegmenter(None, clip, clip_batch_size=256),
        "maskpool": OnePassSegmenter(None, clip, pooling=pooling),
        "adapter": OnePassSegmenter(None, clip, adapter=adapter),
    }
    text = segmenters["crops"].text_embeddings([f"class {i}" for i in range(44)])
    rows = []
    for count in args.proposals:
        generator = torch.Generator().manual_seed(args.seed)
        masks = [random_boxes(count, *image.shape[1:], generator) for image in images]
        seconds = {}
        for path in args.paths:
            seconds[path] = time_path(segmenters[path].clip_probs, images, masks, text, args.repeats, args.precision)
            for precision, per_image in seconds[path].items():
                versus_crops = seconds["crops"][precision] / per_image if "crops" in seconds else float("nan")
                versus_fp32 = seconds[path]["fp32"] / per_image if "fp32" in seconds[path] else float("nan")
                rows.append((size, count, path, precision, 1 / per_image, 1000 * per_image, versus_crops, versus_fp32))
                print(
                    f"{size:<10} Q={count:<4} {path:<9} {precision:<5} {1 / per_image:9.3f} images/s "
                    f"{1000 * per_image:10.1f} ms/image {versus_crops:7.2f}x crops {versus_fp32:6.2f}x fp32",
                    flush=True,
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--sizes", default="demo,vit-b16,convnext-b")
    cli.add_argument("--proposals", default="24,100", help="proposals per image, comma-separated")
    cli.add_argument("--images", type=int, default=32, help="demo images")
    cli.add_argument("--real-images", type=int, default=1, help="512-px images at the real sizes")
    cli.add_argument("--repeats", type=int, default=2, help="timed runs per path (the best is kept)")
    cli.add_argument("--threads", type=int, default=2)
    cli.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, from {', '.join(PATHS)}")
    cli.add_argument(
        "--precision",
        default="fp32",
        help=f"comma-separated, from {', '.join(INFERENCE_PRECISIONS)}; several are timed in turns",
    )
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--clip", type=Path, default=Path("artifacts/clip_base"))
    cli.add_argument("--adapter", type=Path, default=Path("artifacts/adapter_base"))
    cli.add_argument("--manifest", type=Path, default=Path("data/world/manifest.json"))
    args = cli.parse_args(argv)
    args.proposals = [int(q) for q in args.proposals.split(",")]
    args.paths = args.paths.split(",")
    args.precision = args.precision.split(",")
    if not set(args.paths) <= set(PATHS) or not set(args.precision) <= set(INFERENCE_PRECISIONS):
        cli.error(f"--paths from {', '.join(PATHS)}; --precision from {', '.join(INFERENCE_PRECISIONS)}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.precision}")
    for size in args.sizes.split(","):
        if size != "demo" and size not in REAL:
            cli.error(f"unknown size {size!r}: demo, {', '.join(REAL)}")
        run_size(size, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
