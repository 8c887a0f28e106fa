"""What the on-disk text-embedding cache saves: the five benchmarks' vocabularies embedded by CLIPs
that share a text tower (finetuning locks it), cold and from the cache.

For each CLIP, the real class lists of the five papers' benchmarks (``pipeline/datasets/vocab``:
A-847, PC-459, A-150, PC-59, PAS-20; the first ``--names`` names of each, all by default) are
embedded benchmark after benchmark, as a stage that evaluates every benchmark does, with the 14
ViLD templates. ``--clips N`` CLIPs share one text tower (the random-weight towers of
``--model``, seed 0: as ``clip_base``, ``clip_mpt``, ``clip_ft``, ``clip_ft_mpt``, ``clip_ft_gt``
do). Without the cache each one embeds everything; with it, the first does and the others
read. Prints prompts, seconds and prompts/s per CLIP, both ways, and checks the embeddings
agree bit for bit.

    python benchmarks/text_embedding_cache.py [--model ViT-B-16] [--names 40] [--clips 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.classnames import split_synonyms
from model.clip import build_clip
from model.text import TextClassifier
from pipeline.datasets.vocab import class_names

BENCHMARKS = ("ade847", "pc459", "ade150", "pc59", "voc20")


def embed_all(classifier: TextClassifier, vocabularies: list[list[str]]) -> tuple[list[torch.Tensor], float]:
    start = time.perf_counter()
    embeddings = [classifier(names) for names in vocabularies]
    return embeddings, time.perf_counter() - start


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--model", default="ViT-B-16", help="open_clip name or a config in model/configs")
    cli.add_argument("--names", type=int, default=None, help="the first N names of each benchmark (default: all)")
    cli.add_argument("--clips", type=int, default=5, help="CLIPs sharing the text tower")
    cli.add_argument("--threads", type=int, default=2)
    args = cli.parse_args()
    torch.set_num_threads(args.threads)
    vocabularies = [class_names(name)[: args.names] for name in BENCHMARKS]
    synonyms = len({s for names in vocabularies for name in names for s in split_synonyms(name)})
    bundle = build_clip(args.model, device=torch.device("cpu"), seed=0)
    templates = len(TextClassifier(bundle, disk_cache=None).templates)
    print(
        f"{args.model}: {sum(map(len, vocabularies))} class names of {', '.join(BENCHMARKS)}, {synonyms} distinct "
        f"synonyms × {templates} templates = {synonyms * templates} prompts per CLIP; {args.clips} CLIPs, "
        f"{args.threads} threads"
    )
    reference, cold = embed_all(TextClassifier(bundle, disk_cache=None), vocabularies)
    print(
        f"no cache: {cold:.1f} s per CLIP ({synonyms * templates / cold:.0f} prompts/s), "
        f"{args.clips} CLIPs {args.clips * cold:.1f} s"
    )
    with tempfile.TemporaryDirectory() as folder:
        times = []
        for _ in range(args.clips):
            embeddings, seconds = embed_all(TextClassifier(bundle, disk_cache=Path(folder)), vocabularies)
            assert all(torch.equal(a, b) for a, b in zip(embeddings, reference)), "a cache hit differs"
            times.append(seconds)
    print(
        f"disk cache: first CLIP {times[0]:.1f} s, each other {sum(times[1:]) / max(len(times) - 1, 1):.2f} s, "
        f"{args.clips} CLIPs {sum(times):.1f} s ({args.clips * cold / sum(times):.1f}× less); "
        "embeddings equal bit for bit"
    )


if __name__ == "__main__":
    main()
