"""Stage ``evaluate``: variants on benchmarks → mIoU (all / seen / unseen / hIoU) and pictures.

    python -m stages.evaluate --variant ft_mpt --benchmark demo
    python -m stages.evaluate --variant base mpt oracle --benchmark demo voc20   # several, one process
    python -m stages.evaluate --variant zsseg      # every benchmark of the params' data.benchmarks

``zsseg`` runs each benchmark under zsseg.baseline's own protocol for it, zero-shot or cross-dataset
(params ``evaluate.zsseg``, :mod:`pipeline.evaluation.zsseg`); its record says which (``zsseg``).

Several variants and benchmarks run in one process: each variant's segmenter is built once and
its text embeddings serve every benchmark (the DVC stages run one variant, or one family, on
all benchmarks: a process per variant and benchmark would pay the imports, the CLIP load and the
vocabulary's text embeddings each time).

Variants (see :mod:`pipeline.evaluation.variants`): ``base``, ``mpt``, ``ft``, ``ft_mpt``,
``ft_gt``, ``longer`` (the two-stage segmenter with ``artifacts/clip_<variant>``), Mask-Adapter's
family ``maskpool``, ``maskpool_mean``, ``adapter``, ``adapter_ens``, ``ft_adapter_ens`` (one CLIP pass per
image, with ``artifacts/adapter_<clip>``), ``oracle`` (proposals labelled by the ground
truth) and ``gt_masks_<name>`` (ground-truth segments classified by that classifier).
Reads the ``evaluate`` params section, the world manifest, ``artifacts/proposer``
(except ``gt_masks_*``), the CLIP and adapter folders; writes, for each variant,

* ``metrics/eval/<variant>/<benchmark>.json`` — figures in percent, deterministic;
* ``plots/eval/<variant>/<benchmark>_per_class.png`` — per-class IoU bars;
* ``plots/eval/<variant>/<benchmark>_overlays.png`` — image | ground truth | prediction;
* ``metrics/timings/evaluate_<variant>_<benchmark>.json`` — wall time and images/s
  (from loading the variant's CLIP to its last output; imports not included).

The proposer's outputs stored once per benchmark by the ``propose`` stage, instead of running
the proposer (what the DVC stages do; same figures, see :mod:`pipeline.evaluation.stored_proposals`):

    python -m stages.evaluate --variant base oracle --benchmark demo --stored-proposals data/proposals

Each benchmark's ``<folder>/<benchmark>.parquet`` must match the ``evaluate`` settings (``short_side``,
``mask_threshold``, the images) and each variant's proposer text embeddings, else the stage stops naming the difference.

Masks from any generator (SAM, ``ovseg propose``, ...) instead of the proposer:

    python -m stages.evaluate --variant base maskpool --benchmark demo --proposals sam.parquet

``--proposals`` is a Parquet file in the ``ovseg propose`` format (see
:mod:`pipeline.evaluation.external_proposals`) whose ``file_name`` is each image's path
relative to the benchmark's image folder (``<key>.jpg`` for the demo and ADE layouts), as
``ovseg propose --images <that folder>`` writes it. Every variant must be a two-stage one
(crops or one pass; no ``oracle``, no ``gt_masks_*``); each image's masks are classified
(CLIP's probabilities times the mask's score), an image without rows is predicted all
unlabelled and counted. Nothing goes to the DVC-owned folders: the outputs go to
``outputs/proposals-<file stem>/`` (``--out DIR`` to choose), as ``metrics/<variant>/<benchmark>.json``
and ``plots/<variant>/...``; the record adds ``proposals`` (the file) and
``images_without_proposals``; no timing file is written.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import paths
from core.classnames import display_names
from core.cli import add_benchmark_options, chosen_benchmarks, command, exit_process, parser
from core.device import pick_device, set_threads
from core.io import atomic_write_bytes, write_json
from core.params import load_params
from core.timing import StageTimer
from model.precision import inference_autocast
from model.proposal_segmenter import ProposalSegmenter
from model.proposer import load_proposer
from pipeline.datasets.manifest import World, load_world
from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.evaluation.external_proposals import benchmark_proposals, images_folder, read_proposals
from pipeline.evaluation.iou_chart import per_class_iou_chart
from pipeline.evaluation.label_overlay import comparison_sheet
from pipeline.evaluation.miou import (
    EvalConfig,
    EvaluationRun,
    ProposalLookup,
    benchmark_keys,
    class_is_seen,
    class_is_unseen,
    evaluate_benchmark,
    metrics_record,
)
from pipeline.evaluation.segmenters import build_variant_segmenter, variant_folders, variant_settings
from pipeline.evaluation.stored_proposals import StoredProposals, read_stored_proposals
from pipeline.evaluation.variants import Variant, variant, variant_names
from pipeline.evaluation.zsseg import Protocol, Protocols

PROPOSALS_OUT = Path("outputs")


def output_paths(variant_name: str, benchmark: str, root: Path | None = None) -> dict[str, Path]:
    """Where one evaluation writes: ``metrics``, ``per_class`` and ``overlays``; under ``root``
    (``root/metrics``, ``root/plots``) when given, else in the DVC-owned ``metrics/eval``, ``plots/eval``."""
    metrics, plots = (paths.EVAL_METRICS, paths.EVAL_PLOTS) if root is None else (root / "metrics", root / "plots")
    return {
        "metrics": metrics / variant_name / f"{benchmark}.json",
        "per_class": plots / variant_name / f"{benchmark}_per_class.png",
        "overlays": plots / variant_name / f"{benchmark}_overlays.png",
    }


def proposals_out(proposals: Path) -> Path:
    """The default output root of an evaluation with external proposals: ``outputs/proposals-<file stem>``."""
    return PROPOSALS_OUT / f"proposals-{proposals.stem}"


def write_pictures(
    run: EvaluationRun,
    record: dict[str, Any],
    class_names: list[str],
    seen: np.ndarray | None,
    paths: dict[str, Path],
) -> None:
    """The per-class IoU chart and, when examples were kept, the overlay sheet."""
    names = display_names(class_names)
    seen_by_name = None if seen is None else {name: bool(s) for name, s in zip(names, seen)}
    title = f"{record['variant']} on {record['benchmark']}: per-class IoU ({record['images']} images)"
    per_class_iou_chart(record["per_class"], seen_by_name, paths["per_class"], title=title, mean=record["mIoU"])
    if run.examples:
        rows = [(example.key, example.image, example.label, example.prediction) for example in run.examples]
        sheet = comparison_sheet(rows, class_names, title=f"{record['variant']} on {record['benchmark']}")
        buffer = io.BytesIO()
        sheet.save(buffer, format="PNG")
        atomic_write_bytes(paths["overlays"], buffer.getvalue())


def checked_variants(
    variant_names: Sequence[str], benchmarks: Sequence[str], proposals: Path | None, stored_proposals: Path | None
) -> list[Variant]:
    """The variants named, once each, after checking that the benchmarks and the two proposal sources fit them."""
    if proposals is not None and stored_proposals is not None:
        raise ValueError(
            "--proposals (masks to classify) and --stored-proposals (the proposer's outputs) exclude each other"
        )
    specs = [variant(name) for name in variant_names]
    if len({spec.name for spec in specs}) != len(specs):
        raise ValueError(f"a variant is listed twice: {', '.join(variant_names)}")
    if not benchmarks or len(set(benchmarks)) != len(benchmarks):
        raise ValueError(f"expected distinct benchmarks, got {list(benchmarks)}")
    if proposals is not None:
        diagnostics = [spec.name for spec in specs if spec.mode != "two_stage"]
        if diagnostics:
            raise ValueError(
                f"--proposals classifies given masks; the diagnostics {', '.join(diagnostics)} "
                "make their own (evaluate them without --proposals)"
            )
        if len(benchmarks) != 1:
            raise ValueError(f"--proposals holds the masks of one benchmark, got {len(benchmarks)} benchmarks")
    return specs


def run(
    variant_names: Sequence[str],
    benchmarks: Sequence[str],
    params: dict[str, Any],
    *,
    world_path: Path = paths.WORLD_MANIFEST,
    artifacts: Path = paths.ARTIFACTS,
    proposals: Path | None = None,
    out: Path | None = None,
    stored_proposals: Path | None = None,
) -> list[dict[str, Any]]:
    """Evaluate each variant on each benchmark (one process: one import, one world; each variant's
    segmenter built once, its text embeddings shared by the benchmarks); write the outputs listed in
    the module docstring; return the metrics records, variant by variant, benchmarks in order.

    ``proposals``: a Parquet file of masks replacing the proposer (two-stage variants, one
    benchmark); ``out``: the output root (default with ``proposals``: :func:`proposals_out`, else
    the DVC-owned folders). ``stored_proposals``: the ``propose`` stage's folder, whose
    ``<benchmark>.parquet`` is read instead of running the proposer. Every input is checked
    before any work starts.
    """
    specs = checked_variants(variant_names, benchmarks, proposals, stored_proposals)
    if proposals is not None:
        out = proposals_out(proposals) if out is None else out
    params = dict(params)
    device = pick_device(params.pop("device", "auto"))
    set_threads(params.pop("threads", None), "evaluate.threads")
    protocols = Protocols.from_params(params.pop("zsseg")) if "zsseg" in params else None
    if protocols is None and any(spec.name == "zsseg" for spec in specs):
        raise ValueError("variant zsseg needs the params section evaluate.zsseg (its protocol per benchmark)")
    settings = EvalConfig.from_params(params).resolved(device)
    world = load_world(world_path)
    inputs = [benchmark_inputs(world, name, settings, proposals, stored_proposals) for name in benchmarks]
    for spec in specs:
        variant_folders(spec, artifacts)
    proposer = None
    if proposals is None and stored_proposals is None and any(spec.needs_proposer for spec in specs):
        folder = artifacts / "proposer"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: proposer folder not found")
        proposer = load_proposer(folder, device)
    records = []
    for spec in specs:
        if spec.name == "zsseg" and protocols is not None:  # a segmenter per benchmark: its own protocol
            for bench in inputs:
                protocol = protocols.protocol(bench.name)
                each, each_settings = protocol.variant(spec.name), protocol.settings(settings)
                segmenter = build_variant_segmenter(each, proposer, artifacts, each_settings, device)
                records.append(evaluate_one(each, segmenter, bench, each_settings, device, proposals, out, protocol))
            continue
        segmenter = build_variant_segmenter(
            spec, proposer if spec.needs_proposer else None, artifacts, settings, device
        )
        for bench in inputs:
            records.append(
                evaluate_one(spec, segmenter, bench, variant_settings(spec, settings), device, proposals, out)
            )
    return records


@dataclass
class BenchmarkInputs:
    """What one benchmark's evaluations share: its dataset, seen/unseen masks and proposals."""

    name: str
    dataset: SegmentationDataset
    seen: np.ndarray | None
    unseen: np.ndarray | None
    lookup: ProposalLookup | None = None
    stored: StoredProposals | None = None


def benchmark_inputs(
    world: World, name: str, settings: EvalConfig, proposals: Path | None, stored_proposals: Path | None
) -> BenchmarkInputs:
    """Open benchmark ``name`` and read (and check) its external or stored proposals."""
    dataset = world.benchmark(name)
    bench = BenchmarkInputs(
        name,
        dataset,
        class_is_seen(dataset.class_names, world.classes),
        class_is_unseen(dataset.class_names, world.classes, closed=world.closed_vocabulary),
    )
    if proposals is not None:
        bench.lookup = benchmark_proposals(read_proposals(proposals, images_folder(dataset)), dataset)
    if stored_proposals is not None:
        bench.stored = read_stored_proposals(stored_proposals / f"{name}.parquet", dataset)
        bench.stored.check_settings(settings, benchmark_keys(dataset, settings))
    return bench


def evaluate_one(
    spec: Variant,
    segmenter: ProposalSegmenter,
    bench: BenchmarkInputs,
    settings: EvalConfig,
    device: torch.device,
    proposals: Path | None,
    out: Path | None,
    protocol: Protocol | None = None,
) -> dict[str, Any]:
    """One variant on one benchmark: evaluate, write its metrics, pictures and timing; its record.
    ``protocol``: the ``zsseg`` row's on this benchmark (stored proposals are binarised at its threshold)."""
    dataset, benchmark, stored = bench.dataset, bench.name, bench.stored
    lookup = None
    if stored is not None:
        lookup = stored.get if protocol is None else lambda key: protocol.proposals(stored.get(key))
    timer = StageTimer(f"evaluate_{spec.name}_{benchmark}")
    if stored is not None and spec.needs_proposer:
        with inference_autocast(settings.precision, segmenter.device):  # the embeddings the evaluation will use
            stored.check_text(segmenter.proposer_embeddings(list(dataset.class_names)), spec.name)
    print(
        f"evaluate {spec.name}/{benchmark}: {spec.description}; {len(dataset)} images, "
        f"{len(dataset.class_names)} classes, on {device} ({torch.get_num_threads()} CPU threads)"
    )
    result = evaluate_benchmark(segmenter, dataset, spec, settings, bench.seen, bench.lookup, lookup)
    record = metrics_record(
        result,
        dataset.class_names,
        bench.seen,
        variant=spec,
        benchmark=benchmark,
        settings=settings,
        unseen=bench.unseen,
    )
    if protocol is not None:
        record["zsseg"] = protocol.record()
    if proposals is not None:
        record.update(proposals=str(proposals), images_without_proposals=result.images_without_proposals)
    paths = output_paths(spec.name, benchmark, out)
    write_json(paths["metrics"], record)
    write_pictures(result, record, list(dataset.class_names), bench.seen, paths)
    seconds = timer.seconds()
    rate = result.images / max(seconds, 1e-9)
    if proposals is None:  # timings of the DVC runs only
        seconds = timer.write(images_per_s=rate, images=result.images)["seconds"]
    print(
        f"evaluate {spec.name}/{benchmark}: {format_figures(record)}; "
        f"{result.images} images in {seconds:.1f} s ({rate:.1f} images/s)"
    )
    if proposals is not None:
        print(
            f"evaluate {spec.name}/{benchmark}: masks from {proposals}, "
            f"{result.images_without_proposals} image(s) without any; wrote {paths['metrics']}"
        )
    return record


def format_figures(record: dict[str, Any]) -> str:
    """``mIoU 12.3 (seen 14.0, unseen 9.1, hIoU 11.0)``, ``n/a`` for undefined figures."""

    def fmt(key: str) -> str:
        value = record.get(key)
        return "n/a" if value is None else f"{value:.1f}"

    return f"mIoU {fmt('mIoU')} (seen {fmt('mIoU_seen')}, unseen {fmt('mIoU_unseen')}, hIoU {fmt('hIoU')})"


@command("evaluate")
def main(argv: list[str] | None = None) -> int:
    cli = parser("ovseg evaluate", __doc__)
    cli.add_argument(
        "--variant",
        required=True,
        nargs="+",
        choices=variant_names(),
        metavar="VARIANT",
        help=f"one or more of: {', '.join(variant_names())} (several run in one process)",
    )
    add_benchmark_options(cli)
    cli.add_argument(
        "--proposals",
        type=Path,
        default=None,
        metavar="FILE.parquet",
        help="classify these masks (the `ovseg propose` format, file names relative to the "
        "benchmark's image folder) instead of running the proposer",
    )
    cli.add_argument(
        "--stored-proposals",
        type=Path,
        default=None,
        metavar="DIR",
        help="the propose stage's folder (data/proposals): its <benchmark>.parquet files are read "
        "instead of running the proposer",
    )
    cli.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"output root holding metrics/ and plots/ (default with --proposals: "
        f"{PROPOSALS_OUT}/proposals-<file stem>; else metrics/eval and plots/eval)",
    )
    cli.add_argument(
        "--if-present",
        action="store_true",
        help="skip, with a line, the benchmarks the world does not have (the evaluate_val stage on a real world "
        "without a val benchmark) instead of stopping",
    )
    args = cli.parse_args(argv)
    benchmarks = chosen_benchmarks(args)
    if args.if_present:
        present = set(load_world(args.world).benchmark_names)
        for name in (b for b in benchmarks if b not in present):
            print(f"evaluate: the world has no benchmark {name!r}: skipped")
        benchmarks = [b for b in benchmarks if b in present]
        if not benchmarks:
            folders = output_paths("none", "none", args.out)
            for path in (folders["metrics"], folders["per_class"]):
                path.parent.parent.mkdir(parents=True, exist_ok=True)  # the stage's output folders, empty
            return 0
    run(
        args.variant,
        benchmarks,
        load_params("evaluate", args.params),
        world_path=args.world,
        artifacts=args.artifacts,
        proposals=args.proposals,
        out=args.out,
        stored_proposals=args.stored_proposals,
    )
    return 0


if __name__ == "__main__":
    exit_process(main())
