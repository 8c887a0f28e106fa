"""Images/s and mIoU of a demo evaluation in fp32 and in bf16, the two in turns.

For each variant, two segmenters are built as the ``evaluate`` stage builds them
(:func:`pipeline.evaluation.segmenters.build_variant_segmenter`); the text embeddings of the
benchmark's classes are computed under each precision (timed: the stage pays them once per
variant), then the images are segmented 8 at a time by one precision and then the other,
alternating which goes first, so that a machine shared with other jobs slows both alike.
Precision is :func:`model.precision.inference_autocast`, as in ``evaluate_benchmark``.

    python benchmarks/evaluation_precision.py [--variants base,ft_mpt,maskpool] [--benchmark demo]
        [--images 200] [--threads 1] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.params import load_params
from model.metrics import ConfusionMatrix
from model.precision import INFERENCE_PRECISIONS, inference_autocast
from model.proposer import load_proposer
from pipeline.datasets.manifest import load_world
from pipeline.datasets.segmentation import IGNORE
from pipeline.evaluation.miou import RUNTIME_KEYS, EvalConfig, class_is_seen
from pipeline.evaluation.segmenters import build_variant_segmenter
from pipeline.evaluation.variants import variant

CHUNK = 8


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--variants", default="base,ft_mpt,maskpool")
    cli.add_argument("--benchmark", default="demo")
    cli.add_argument("--images", type=int, default=200)
    cli.add_argument("--threads", type=int, default=1)
    cli.add_argument("--params", type=Path, default=None)
    cli.add_argument("--world", type=Path, default=Path("data/world/manifest.json"))
    cli.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    args = cli.parse_args(argv)
    torch.set_num_threads(args.threads)
    section = {k: v for k, v in load_params("evaluate", args.params).items() if k not in RUNTIME_KEYS}
    settings = dataclasses.replace(EvalConfig.from_params(section), precision="fp32")
    world = load_world(args.world)
    dataset = world.benchmark(args.benchmark)
    seen = class_is_seen(dataset.class_names, world.classes)
    classes = list(dataset.class_names)
    device = torch.device("cpu")
    proposer = load_proposer(args.artifacts / "proposer", device)
    samples = [dataset.load(key) for key in dataset.keys()[: args.images]]
    print(f"load average {os.getloadavg()[0]:.1f}, {args.threads} torch threads, {len(samples)} images", flush=True)
    for name in args.variants.split(","):
        spec = variant(name)
        segmenters = {
            p: build_variant_segmenter(spec, proposer, args.artifacts, settings, device) for p in INFERENCE_PRECISIONS
        }
        seconds = dict.fromkeys(segmenters, 0.0)
        confusion = {p: ConfusionMatrix(len(classes), ignore_index=IGNORE) for p in segmenters}
        text = {}
        for precision, segmenter in segmenters.items():
            start = time.perf_counter()
            with inference_autocast(precision, device), torch.no_grad():
                text[precision] = segmenter.text_embeddings(classes)
            seconds[precision] += time.perf_counter() - start
        text_seconds = dict(seconds)
        for first in range(0, len(samples), CHUNK):
            chunk = samples[first : first + CHUNK]
            order = INFERENCE_PRECISIONS if (first // CHUNK) % 2 == 0 else INFERENCE_PRECISIONS[::-1]
            for precision in order:
                start = time.perf_counter()
                with inference_autocast(precision, device), torch.no_grad():
                    labels = segmenters[precision].segment_batch(
                        [s.image for s in chunk], classes, text[precision], seen
                    )
                seconds[precision] += time.perf_counter() - start
                for sample, label in zip(chunk, labels):
                    confusion[precision].update(label, sample.label)
        miou = {p: confusion[p].summary(seen)["mIoU"] for p in segmenters}
        print(
            f"{name:<10} fp32 {len(samples) / seconds['fp32']:6.2f} images/s (text {text_seconds['fp32']:.1f} s)  "
            f"bf16 {len(samples) / seconds['bf16']:6.2f} images/s (text {text_seconds['bf16']:.1f} s)  "
            f"bf16 ÷ fp32 {seconds['fp32'] / seconds['bf16']:.2f}x  "
            f"mIoU fp32 {miou['fp32']:.2f} bf16 {miou['bf16']:.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
