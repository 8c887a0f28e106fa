"""The proposer's outputs stored once per benchmark give every segmenter the live proposer's labels."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from core.rle import decode_rle
from model.clip import build_clip
from model.one_pass import OnePassSegmenter
from model.precision import inference_autocast
from model.proposer import build_proposer, load_proposer_config
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.benchmarks import open_benchmark
from pipeline.datasets.proposal_table import proposal_rows, write_table
from pipeline.evaluation.miou import EvalConfig, evaluate_benchmark, resize_short_side
from pipeline.evaluation.stored_proposals import METADATA_KEY, image_rows, propose_benchmark, read_stored_proposals
from pipeline.evaluation.variants import variant

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

CLASSES = ["sky", "grass, lawn", "zebra"]
SIZES = [(40, 48), (40, 48), (37, 51), (40, 48), (40, 48)]  # a run of sizes broken by an odd one


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "demo"
    for folder in ("images/validation", "annotations/validation"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        label = np.ones((h, w), np.uint8)
        label[h // 2 :] = 2
        label[5:15, 10:25] = 3
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"images/validation/k{i}.jpg")
        Image.fromarray(label).save(root / f"annotations/validation/k{i}.png")
    return open_benchmark("demo", root)


@pytest.fixture(scope="module")
def models():
    clip = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    config = dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=clip.embed_dim)
    torch.manual_seed(0)
    return build_proposer(config).eval(), clip


SETTINGS = EvalConfig(batch_size=3, clip_batch_size=16)


@pytest.fixture(scope="module")
def stored_file(dataset, models, tmp_path_factory):
    proposer, clip = models
    table = propose_benchmark(TwoStageSegmenter(proposer, clip), dataset, SETTINGS)
    return write_table(table, tmp_path_factory.mktemp("proposals") / "demo.parquet")


def test_stored_outputs_are_the_live_outputs_bit_for_bit(dataset, models, stored_file):
    proposer, clip = models
    live_segmenter = TwoStageSegmenter(proposer, clip)
    stored = read_stored_proposals(stored_file, dataset)
    keys = dataset.keys()
    images = [dataset.load(key).image for key in keys]
    live = []
    for start in range(0, len(keys), SETTINGS.batch_size):  # the evaluation's batches
        live += live_segmenter.propose_images(images[start : start + 3], CLASSES)
    for key, expected in zip(keys, live):
        got = stored.get(key)
        for name in ("mask_probs", "class_probs", "scores", "masks"):
            assert torch.equal(getattr(got, name), getattr(expected, name)), (key, name)
    assert len(live) == len(keys) == 5
    assert stored.info.images == 5 and stored.info.queries == proposer.config.decoder.num_queries


def test_bf16_proposals_are_those_of_a_bf16_evaluation(dataset, models, tmp_path):
    proposer, clip = models
    segmenter = TwoStageSegmenter(proposer, clip)
    settings = dataclasses.replace(SETTINGS, precision="bf16")
    path = write_table(propose_benchmark(segmenter, dataset, settings), tmp_path / "demo.parquet")
    stored = read_stored_proposals(path, dataset)
    assert stored.info.precision == "bf16"
    stored.check_settings(settings, dataset.keys())
    with inference_autocast("bf16", "cpu"):  # what an evaluation under evaluate.precision bf16 does
        text = segmenter.proposer_embeddings(CLASSES)
        live = segmenter.propose_images([dataset.load(key).image for key in dataset.keys()[:3]], CLASSES, text)
    stored.check_text(text, "base")
    assert torch.equal(stored.get(dataset.keys()[0]).class_probs, live[0].class_probs)


@pytest.mark.parametrize("name", ["base", "maskpool", "oracle"])
def test_a_segmenter_fed_the_stored_proposals_labels_as_the_live_one(dataset, models, stored_file, name):
    proposer, clip = models
    spec = variant(name)
    stored = read_stored_proposals(stored_file, dataset)

    def build(with_proposer):
        if spec.classifier == "maskpool":
            return OnePassSegmenter(with_proposer, clip, image_batch_size=3)
        return TwoStageSegmenter(with_proposer, clip, clip_batch_size=16)

    live = evaluate_benchmark(build(proposer), dataset, spec, SETTINGS)
    from_file = evaluate_benchmark(build(None), dataset, spec, SETTINGS, stored=stored.get)  # no proposer at all
    assert np.array_equal(live.confusion.matrix, from_file.confusion.matrix)
    for a, b in zip(live.examples, from_file.examples):
        assert np.array_equal(a.prediction, b.prediction)
    # and image by image through the segmenter itself
    segmenter = build(proposer)
    images = [dataset.load(key).image for key in dataset.keys()[:3]]
    given = [stored.get(key) for key in dataset.keys()[:3]]
    if spec.mode == "oracle":
        labels = [dataset.load(key).label for key in dataset.keys()[:3]]
        assert all(
            np.array_equal(a, b)
            for a, b in zip(
                segmenter.segment_oracle_batch(images, labels, CLASSES),
                build(None).segment_oracle_batch(images, labels, CLASSES, proposals=given),
            )
        )
    else:
        assert all(
            np.array_equal(a, b)
            for a, b in zip(
                segmenter.segment_batch(images, CLASSES), build(None).segment_batch(images, CLASSES, proposals=given)
            )
        )


def test_rows_per_image_are_the_queries_sorted_and_the_bytes_deterministic(dataset, models, stored_file, tmp_path):
    proposer, clip = models
    table = pq.read_table(stored_file)
    queries = proposer.config.decoder.num_queries
    assert table.num_rows == len(SIZES) * queries
    keys = list(zip(table.column("file_name").to_pylist(), table.column("proposal_id").to_pylist()))
    assert keys == sorted(keys)
    again = write_table(propose_benchmark(TwoStageSegmenter(proposer, clip), dataset, SETTINGS), tmp_path / "b.parquet")
    assert again.read_bytes() == stored_file.read_bytes()
    # the file is also an external proposals file (`--proposals`), readable by the shared code
    info = json.loads(pq.read_schema(stored_file).metadata[METADATA_KEY])
    assert info["class_names"] == CLASSES and info["short_side"] is None


@pytest.mark.parametrize("height,width", [(1, 1), (7, 13), (37, 51), (40, 48)])
def test_rle_round_trip_keeps_every_pixel_of_empty_full_and_odd_masks(height, width):
    rng = np.random.default_rng(height * width)
    masks = torch.from_numpy(
        np.stack(
            [
                np.zeros((height, width), bool),
                np.ones((height, width), bool),
                rng.random((height, width)) > 0.5,
                rng.random((height, width)) > 0.97,
            ]
        )
    )
    rows = proposal_rows("x.png", masks, torch.ones(4), torch.full((4, 2), 0.5), ["a", "b"], keep_empty=True)
    assert [row["proposal_id"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["area"] == 0 and rows[0]["bbox"] == [0.0, 0.0, 0.0, 0.0]
    for row, mask in zip(rows, masks.numpy()):
        assert np.array_equal(decode_rle({"counts": row["mask_rle"], "size": [height, width]}), mask)


def test_image_rows_need_masks_and_logits(models):
    proposer, clip = models
    props = TwoStageSegmenter(proposer, clip).propose_images([np.zeros((8, 8, 3), np.uint8)], CLASSES)[0]
    assert len(image_rows("a.png", props, CLASSES)) == proposer.config.decoder.num_queries
    with pytest.raises(ValueError, match="cannot be stored"):
        image_rows("a.png", dataclasses.replace(props, mask_logits=None), CLASSES)


def test_mismatches_are_refused_naming_the_file(dataset, models, stored_file, tmp_path):
    proposer, clip = models
    stored = read_stored_proposals(stored_file, dataset)
    with pytest.raises(ValueError, match=r"demo.parquet: proposals made with short_side None.*uses 32"):
        stored.check_settings(dataclasses.replace(SETTINGS, short_side=32), dataset.keys())
    with pytest.raises(ValueError, match="mask_threshold"):
        stored.check_settings(dataclasses.replace(SETTINGS, mask_threshold=0.5), dataset.keys())
    with pytest.raises(ValueError, match="proposals made with precision fp32, the evaluation uses bf16"):
        stored.check_settings(dataclasses.replace(SETTINGS, precision="bf16"), dataset.keys())
    with pytest.raises(ValueError, match="no proposals for 1 of the 6 images"):
        stored.check_settings(SETTINGS, [*dataset.keys(), "k9"])
    stored.check_text(TwoStageSegmenter(proposer, clip).proposer_embeddings(CLASSES), "base")
    with pytest.raises(ValueError, match="other text embeddings than variant 'ft'"):
        stored.check_text(torch.zeros(3, clip.embed_dim), "ft")
    table = pq.read_table(stored_file)
    short = tmp_path / "short.parquet"
    write_table(table.slice(0, table.num_rows - 1), short)  # the last image lost a query
    with pytest.raises(ValueError, match=r"short.parquet: image 'k4.jpg' has 5 rows, expected one per query \(6\)"):
        read_stored_proposals(short, dataset)
    plain = tmp_path / "plain.parquet"
    pq.write_table(table.replace_schema_metadata(None), plain)
    with pytest.raises(ValueError, match="plain.parquet: no ovseg.proposals metadata"):
        read_stored_proposals(plain, dataset)
    with pytest.raises(FileNotFoundError, match="missing.parquet: stored proposals not found"):
        read_stored_proposals(tmp_path / "missing.parquet", dataset)


def test_short_side_proposals_are_at_the_segmented_size(dataset, models, tmp_path):
    proposer, clip = models
    settings = dataclasses.replace(SETTINGS, short_side=20, max_images=2)
    path = write_table(propose_benchmark(TwoStageSegmenter(proposer, clip), dataset, settings), tmp_path / "s.parquet")
    stored = read_stored_proposals(path, dataset)
    stored.check_settings(settings, dataset.keys()[:2])
    image = resize_short_side(dataset.load("k0").image, 20)
    assert tuple(stored.get("k0").mask_probs.shape[-2:]) == image.shape[:2] and stored.info.images == 2
