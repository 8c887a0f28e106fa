"""The per-class IoU chart: which bars are drawn, and reproducible PNG bytes."""

from __future__ import annotations

from PIL import Image

from pipeline.evaluation.iou_chart import per_class_iou_chart, select_bars


def test_select_bars_skips_undefined_and_keeps_the_extremes():
    per_class = {"a": 10.0, "b": None, "c": 90.0}
    assert select_bars(per_class) == (["a", "c"], 0)
    many = {f"c{i:03d}": float(i) for i in range(100)}
    shown, left_out = select_bars(many, max_bars=10)
    assert left_out == 90
    assert shown == [f"c{i:03d}" for i in (0, 1, 2, 3, 4, 95, 96, 97, 98, 99)]  # benchmark order kept


def test_chart_is_a_png_with_the_same_bytes_each_time(tmp_path):
    per_class = {"sky": 55.5, "grass": 20.0, "zebra": None, "cow": 0.0}
    seen = {"sky": True, "grass": False, "zebra": True, "cow": False}
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    per_class_iou_chart(per_class, seen, first, title="base on demo", mean=25.2)
    per_class_iou_chart(per_class, seen, second, title="base on demo", mean=25.2)
    assert first.read_bytes() == second.read_bytes()
    with Image.open(first) as image:
        assert image.format == "PNG" and image.size == (640, 250)
        assert "Software" not in image.info
    per_class_iou_chart(per_class, None, tmp_path / "c.png", title="no split")
    assert (tmp_path / "c.png").read_bytes() != first.read_bytes()
