"""Throughput of the mining job against the bare model compute it wraps.

Measures, on the same images and settings:

* **bare**: one process, ``threads`` torch threads (default 1), a plain loop that
  decodes each image and runs :func:`pipeline.mining.miner.mine_images` (proposer,
  regions, masked crops, CLIP, matching) in batches of ``images_per_batch``;
* **job**: :func:`pipeline.mining.job.run_mine_job` end to end (pipeline start,
  worker processes, model loading, shards, read-back and reconciliation) on the
  DirectRunner with 1 and 2 worker processes (``direct``) or threads (``threads``), and on a
  local Dask cluster of 2 workers.

Per core = images/s ÷ workers (the bare loop uses one core). The job's fixed
cost (start-up, model loading, writing) is measured by a run over
``--startup-images`` images and reported; "steady" rates subtract it. Peak
resident memory is sampled (psutil, every 0.1 s) over every process the
benchmark starts, and the largest is reported per run, with the CPU seconds of
each busy worker process: on a shared machine the wall times depend on the
other load, the CPU split between the workers does not.

    python benchmarks/mine_throughput.py [--params params.yaml] [--manifest data/world/manifest.json]
        [--nouns data/nouns] [--clip artifacts/clip_base] [--proposer artifacts/proposer] [--images 400]
        [--runners direct-1,direct-2,dask-2,threads-1,threads-2]

The mining settings are the ``mine`` section of the params file, on the CPU
(``--images-per-batch`` and ``--threads`` override theirs).

Targets of the project: job ≥ 0.8 × bare per core; 2 workers ≥ 1.6 × 1 worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from core.params import load_params
from pipeline.beam.schemas import NOUNS, NOUNS_SORT_BY
from pipeline.beam.shards import read_shards, write_shard
from pipeline.datasets.coco import CocoCaptions
from pipeline.datasets.manifest import load_world
from pipeline.mining.accounting import NounEntry
from pipeline.mining.config import MiningConfig
from pipeline.mining.image_io import ImageProblem, load_image
from pipeline.mining.job import image_inputs, run_mine_job
from pipeline.mining.miner import ImageToMine, mine_images
from pipeline.mining.models import load_models
from stages.mine import MineStageConfig


@dataclass(frozen=True)
class Measurement:
    name: str
    workers: int
    images: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: tuple[float, ...]  # per busy worker process (the bare loop: its own)


class PeakMemory:
    """Samples the resident memory and CPU time of this process and all its descendants.

    Keeps each pid's peak memory and its last CPU time (user + system; a process's
    last ``interval`` before it exits is missed). CPU times do not depend on how
    busy the machine is, so they show how the work splits over the workers even
    where wall times cannot.
    """

    def __init__(self, interval: float = 0.1):
        self._interval = interval
        self._peaks: dict[int, int] = {}
        self._cpu: dict[int, float] = {}
        self._cpu_start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for process in [me, *me.children(recursive=True)]:
                try:
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                self._peaks[process.pid] = max(self._peaks.get(process.pid, 0), rss)
                self._cpu[process.pid] = times.user + times.system
                self._cpu_start.setdefault(process.pid, self._cpu[process.pid] if process.pid == me.pid else 0.0)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def worker_cpu_seconds(self) -> list[float]:
        """CPU seconds of each descendant process that used more than a second, largest first."""
        me = os.getpid()
        return sorted((cpu for pid, cpu in self._cpu.items() if pid != me and cpu > 1.0), reverse=True)

    def own_cpu_seconds(self) -> float:
        """CPU seconds this process used while sampled."""
        me = os.getpid()
        return self._cpu.get(me, 0.0) - self._cpu_start.get(me, 0.0)

    def largest_child_mb(self) -> float:
        """Peak RSS of the largest descendant process (a worker), or of this process when there is none."""
        me = os.getpid()
        children = [rss for pid, rss in self._peaks.items() if pid != me]
        return max(children or [self._peaks.get(me, 0)]) / 2**20


def subset(captions: CocoCaptions, nouns_dir: Path, count: int, out: Path) -> CocoCaptions:
    """The first ``count`` images with their captions, and their nouns as a one-shard set in ``out``."""
    ids = sorted(captions.images)[:count]
    chosen = CocoCaptions(
        images={i: captions.images[i] for i in ids},
        captions={i: captions.captions[i] for i in ids if i in captions.captions},
    )
    rows = [row for row in read_shards(nouns_dir, NOUNS).to_pylist() if row["image_id"] in chosen.images]
    write_shard(rows, out, 0, 1, NOUNS, NOUNS_SORT_BY)
    return chosen


def bare_loop(
    captions: CocoCaptions, nouns_dir: Path, proposer: Path, clip: Path, settings: MiningConfig
) -> Measurement:
    """Decode + mine every image of ``captions`` in one process, no Beam."""
    table = read_shards(nouns_dir, NOUNS).to_pylist()
    nouns: dict[int, list[NounEntry]] = {}
    for row in table:
        nouns.setdefault(row["image_id"], []).append(NounEntry(row["noun"], tuple(row["caption_ids"]), row["count"]))
    images = [image for image in image_inputs(captions) if image.image_id in nouns]
    with PeakMemory() as memory:
        torch.set_num_threads(settings.threads)
        models = load_models(proposer, clip, settings.device)
        start = time.perf_counter()
        for first in range(0, len(images), settings.images_per_batch):
            batch = []
            for image in images[first : first + settings.images_per_batch]:
                pixels = load_image(
                    image.path, max_pixels=settings.max_pixels, expected_size=(image.height, image.width)
                )
                if not isinstance(pixels, ImageProblem):
                    entries = tuple(sorted(nouns[image.image_id], key=lambda entry: entry.noun))
                    batch.append(ImageToMine(image, pixels, entries))
            mine_images(models, batch, settings)
        seconds = time.perf_counter() - start
    return Measurement("bare loop", 1, len(images), seconds, memory.largest_child_mb(), (memory.own_cpu_seconds(),))


def job_run(
    name: str,
    runner: dict,
    captions: CocoCaptions,
    nouns_dir: Path,
    proposer: Path,
    clip: Path,
    settings: MiningConfig,
    work: Path,
) -> Measurement:
    out = Path(tempfile.mkdtemp(dir=work))
    with PeakMemory() as memory:
        start = time.perf_counter()
        run_mine_job(
            captions,
            nouns_dir,
            out / "pairs",
            out / "rejects",
            proposer_dir=proposer,
            clip_dir=clip,
            settings=settings,
            num_shards=4,
            runner_cfg=runner,
        )
        seconds = time.perf_counter() - start
    workers = memory.worker_cpu_seconds() or [memory.own_cpu_seconds()]  # in-memory runner: no workers
    return Measurement(
        name, int(runner.get("workers", 1)), len(captions.images), seconds, memory.largest_child_mb(), tuple(workers)
    )


RUNNERS = {
    "direct-1": {"runner": "direct", "workers": 1},
    "direct-2": {"runner": "direct", "workers": 2},
    "dask-2": {"runner": "dask", "workers": 2},
    "inmemory-1": {"runner": "direct-inmemory"},
    # DirectRunner with worker threads in this process: no per-worker imports or model loads
    "threads-1": {"runner": "direct-threads", "workers": 1},
    "threads-2": {"runner": "direct-threads", "workers": 2},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=None, help="params file (default: params.yaml)")
    parser.add_argument("--manifest", type=Path, default=Path("data/world/manifest.json"))
    parser.add_argument("--nouns", type=Path, default=Path("data/nouns"))
    parser.add_argument("--clip", type=Path, default=Path("artifacts/clip_base"))
    parser.add_argument("--proposer", type=Path, default=Path("artifacts/proposer"))
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--startup-images", type=int, default=8)
    parser.add_argument("--images-per-batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--runners", default="direct-1,direct-2,dask-2", help=f"comma-separated, from {', '.join(RUNNERS)}"
    )
    args = parser.parse_args(argv)
    runners = [name for name in args.runners.split(",") if name]
    unknown = [name for name in runners if name not in RUNNERS]
    if unknown:
        parser.error(f"unknown runners {unknown}")

    import logging

    logging.basicConfig(level=logging.WARNING)
    settings = MineStageConfig.from_params(load_params("mine", args.params), device="cpu").settings
    overrides = {"images_per_batch": args.images_per_batch, "threads": args.threads}
    settings = dataclasses.replace(settings, **{key: value for key, value in overrides.items() if value is not None})
    captions = load_world(args.manifest).captions()
    with tempfile.TemporaryDirectory(prefix="mine-bench-") as tmp:
        work = Path(tmp)
        chosen = subset(captions, args.nouns, args.images, work / "nouns")
        small = subset(captions, args.nouns, args.startup_images, work / "nouns_small")
        results = [bare_loop(chosen, work / "nouns", args.proposer, args.clip, settings)]
        startup: dict[str, float] = {}
        for name in runners:
            small_run = job_run(
                name, RUNNERS[name], small, work / "nouns_small", args.proposer, args.clip, settings, work
            )
            startup[name] = (
                small_run.seconds - small_run.images / (results[0].images / results[0].seconds) / small_run.workers
            )
            results.append(
                job_run(name, RUNNERS[name], chosen, work / "nouns", args.proposer, args.clip, settings, work)
            )

    bare_rate = results[0].images / results[0].seconds
    by_name = {result.name: result for result in results}
    print(
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, {os.cpu_count()} CPUs, "
        f"torch threads per process {settings.threads}, images_per_batch {settings.images_per_batch}, "
        f"min_proposal_score {settings.min_proposal_score}, nms_iou {settings.nms_iou}"
    )
    header = (
        f"{'run':<12}{'workers':>8}{'images':>8}{'seconds':>9}{'img/s':>8}{'per core':>9}{'÷ bare':>8}"
        f"{'fixed s':>8}{'steady/core':>12}{'÷ bare':>8}{'peak RSS MB':>12}  CPU s per worker"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        rate = result.images / result.seconds
        per_core = rate / result.workers
        fixed = startup.get(result.name)
        steady = (
            result.images / (result.seconds - fixed) / result.workers
            if fixed is not None and result.seconds > fixed
            else per_core
        )
        print(
            f"{result.name:<12}{result.workers:>8}{result.images:>8}{result.seconds:>9.1f}{rate:>8.1f}"
            f"{per_core:>9.1f}{per_core / bare_rate:>8.2f}{(fixed if fixed is not None else 0.0):>8.1f}"
            f"{steady:>12.1f}{steady / bare_rate:>8.2f}{result.peak_rss_mb:>12.0f}  "
            + " ".join(f"{cpu:.1f}" for cpu in result.cpu_seconds)
        )
    for kind in ("direct", "threads"):
        if f"{kind}-1" in by_name and f"{kind}-2" in by_name:
            speedup = by_name[f"{kind}-1"].seconds / by_name[f"{kind}-2"].seconds
            print(f"{kind}: 2 workers / 1 worker = {speedup:.2f}x (target ≥ 1.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
