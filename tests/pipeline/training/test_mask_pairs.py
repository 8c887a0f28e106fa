import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.io import UnsafePathError
from core.rle import decode_rle, encode_rle
from pipeline.datasets.coco import CocoStuffLabels
from pipeline.training.mask_pairs import MaskedCropDataset, collate, ground_truth_pairs, pairs_from_label, read_pairs


def test_pairs_from_label_gives_one_pair_per_present_class():
    label = np.full((6, 6), -1, np.int32)
    label[:3] = 2
    label[3:, :2] = 0
    pairs = pairs_from_label("img.jpg", label, ["sky", "grass, lawn", "sand, beach"])
    assert [p.noun for p in pairs] == ["sky", "sand"]
    assert decode_rle(pairs[1].rle).sum() == 18 and decode_rle(pairs[0].rle).sum() == 6


def _write_image(path, size=(32, 40)):
    array = np.zeros((*size, 3), np.uint8)
    array[..., 0] = 200
    Image.fromarray(array).save(path)


def test_ground_truth_pairs_walk_the_labels_in_key_order(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for key, (first, second) in {"b": (1, 2), "a": (2, 255)}.items():
        _write_image(tmp_path / "img" / f"{key}.jpg", size=(4, 6))
        raw = np.full((4, 6), first - 1, np.uint8)  # COCO-Stuff stores category id - 1
        raw[2:] = 255 if second == 255 else second - 1
        Image.fromarray(raw).save(tmp_path / "lab" / f"{key}.png")
    labels = CocoStuffLabels(tmp_path / "img", tmp_path / "lab", [{"id": 1, "name": "sky"}, {"id": 2, "name": "sea"}])
    pairs = ground_truth_pairs(labels)
    assert [(p.image_path, p.noun) for p in pairs] == [
        (str(tmp_path / "img" / "a.jpg"), "sea"),
        (str(tmp_path / "img" / "b.jpg"), "sky"),
        (str(tmp_path / "img" / "b.jpg"), "sea"),
    ]
    assert decode_rle(pairs[0].rle).sum() == 12 and decode_rle(pairs[1].rle).sum() == 12


def test_dataset_crops_on_the_fly_and_flags_empty_masks(tmp_path):
    _write_image(tmp_path / "a.jpg")
    full = np.zeros((32, 40), bool)
    full[4:20, 8:30] = True
    pairs = list(pairs_from_label(str(tmp_path / "a.jpg"), full.astype(np.int32) - 1 + 1, ["bg", "box"]))
    empty = type(pairs[0])(str(tmp_path / "a.jpg"), encode_rle(np.zeros((32, 40), bool)), "box")
    data = MaskedCropDataset([*pairs, empty], ["bg", "box"], size=16, mean=[0.5] * 3, std=[0.25] * 3)
    crop, mask, _label, valid = data[0]
    assert crop.shape == (3, 16, 16) and mask.shape == (16, 16) and valid
    batch = collate([data[i] for i in range(len(data))])
    assert batch[0].shape == (3, 3, 16, 16)
    assert batch[3].tolist() == [True, True, False]


def _write_pairs(path, rows):
    schema = pa.schema(
        [
            ("image_id", pa.int64()),
            ("file_name", pa.string()),
            ("noun", pa.string()),
            ("mask_rle", pa.string()),
            ("height", pa.int32()),
            ("width", pa.int32()),
            ("similarity", pa.float32()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def test_read_pairs_resolves_files_and_keeps_the_most_similar(tmp_path):
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    rle = encode_rle(mask)["counts"]
    (tmp_path / "pairs").mkdir()
    rows = [
        dict(image_id=i, file_name=f"{i}.jpg", noun=n, mask_rle=rle, height=4, width=4, similarity=s)
        for i, n, s in [(1, "zebra", 0.2), (1, "sky", 0.9), (2, "ring", 0.5)]
    ]
    _write_pairs(tmp_path / "pairs" / "part-0.parquet", rows)
    pairs = read_pairs(tmp_path / "pairs", tmp_path / "images")
    assert [p.noun for p in pairs] == ["zebra", "sky", "ring"]
    assert pairs[0].image_path == str((tmp_path / "images" / "1.jpg").resolve())
    top = read_pairs(tmp_path / "pairs", tmp_path / "images", limit=2)
    assert [(p.noun) for p in top] == ["sky", "ring"]
    assert np.array_equal(decode_rle(top[0].rle), mask)


def test_read_pairs_refuses_paths_out_of_the_images_root(tmp_path):
    (tmp_path / "pairs").mkdir()
    rle = encode_rle(np.ones((2, 2), bool))["counts"]
    _write_pairs(
        tmp_path / "pairs" / "part-0.parquet",
        [dict(image_id=1, file_name="../secret.jpg", noun="x", mask_rle=rle, height=2, width=2, similarity=1.0)],
    )
    with pytest.raises(UnsafePathError):
        read_pairs(tmp_path / "pairs", tmp_path / "images")


def test_read_pairs_names_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Parquet files"):
        read_pairs(tmp_path, tmp_path)
