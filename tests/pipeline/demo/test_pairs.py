"""Browsing the mined pairs and the rejects: nouns, search, sorting (nulls last), pages, verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from core import paths
from pipeline.datasets.manifest import load_world
from pipeline.demo.pairs import PAGE_SIZE, TABLE_COLUMNS, PairsBrowser, clamp_page
from pipeline.mining.pair_pictures import RIGHT, WRONG, PairJudge


@pytest.fixture(scope="module")
def browser(demo_root):
    world = load_world(demo_root / paths.WORLD_MANIFEST)
    return PairsBrowser.load(demo_root / paths.PAIRS, world.images_dir, demo_root / paths.REJECTS, PairJudge(world))


def test_nouns_most_pairs_first_and_search(browser):
    nouns = browser.nouns()
    counts = [count for _, count in nouns]
    assert counts == sorted(counts, reverse=True) and sum(counts) == browser.pairs.num_rows
    assert ("thing", 6) in nouns
    assert [name for name, _ in browser.nouns("THI")] == ["thing"]
    assert browser.nouns("no such noun") == []
    for name, _ in nouns:
        assert browser.nouns(name.upper())[0][0] == name  # an exact match comes first


def test_sorting_by_each_key_with_missing_margins_last(browser):
    noun = next(name for name, _ in browser.nouns() if name != "thing")
    values = browser.pairs.to_pylist()
    for key in ("similarity", "softmax", "margin", "area", "proposal_score"):
        for descending in (True, False):
            order = browser.order(noun, key, descending)
            got = [values[i][key] for i in order]
            present = [v for v in got if v is not None]
            assert present == sorted(present, reverse=descending)
            assert got[len(present) :] == [None] * (len(got) - len(present))  # nulls last in both orders
    with pytest.raises(ValueError, match="unknown sort key 'colour'"):
        browser.order(noun, "colour")


def test_a_page_shows_crops_with_values_and_verdicts(browser):
    page = browser.page("thing", "similarity", True, 1, crop_size=64)
    assert page.total == 6 and page.pages == 1 and len(page.items) == 6
    crop, caption = page.items[0]
    assert crop.shape == (64, 64, 3) and caption.count(" · ") == 2
    assert list(page.rows[0]) == [*TABLE_COLUMNS, "verdict"]
    assert [row["similarity"] for row in page.rows] == sorted((row["similarity"] for row in page.rows), reverse=True)
    assert all(row["verdict"] == "not judged (the noun names no class)" for row in page.rows)
    assert page.describe() == "'thing': 6 pairs; page 1 of 1 (pairs 1–6)"
    # Frames follow the verdicts: class nouns with their true segment are right (green), a class absent from
    # the image is wrong (red).
    verdicts = set()
    for name, _ in browser.nouns():
        if name != "thing":
            page = browser.page(name, crop_size=64)
            for (crop, _), row in zip(page.items, page.rows):
                verdict = row["verdict"].split(" ")[0]
                assert tuple(crop[0, 0]) == {"right": RIGHT, "wrong": WRONG}[verdict]
                verdicts.add(verdict)
    assert verdicts == {"right", "wrong"}


def test_pages_clamp_and_count(browser):
    assert clamp_page("x", 3) == 1 and clamp_page(0, 3) == 1 and clamp_page(9, 3) == 3 and clamp_page(2.0, 3) == 2
    page = browser.page("thing", page=99)
    assert page.page == 1 and page.total < PAGE_SIZE
    assert browser.page("nothing at all").describe() == "'nothing at all': no pairs"


def test_rejects_by_stage_kind_and_reason(browser):
    assert browser.reject_reasons() == [
        ("mine/caption/no_pair", 1),
        ("mine/image/no_proposal", 1),
        ("nouns/caption/no_noun", 1),
    ]
    rows, page, pages = browser.rejects_page("nouns/caption/no_noun", 5)
    assert (page, pages) == (1, 1) and rows[0]["detail"] == "no noun in 'A.'" and rows[0]["caption_id"] == 9


def test_a_table_without_the_pairs_columns_is_refused(browser, tmp_path):
    with pytest.raises(ValueError, match="lacks the columns"):
        PairsBrowser(browser.pairs.drop(["margin"]), tmp_path)
    with pytest.raises(FileNotFoundError, match="pairs folder not found"):
        PairsBrowser.load(tmp_path / "nowhere", tmp_path)
    assert np.isnan(browser._columns["margin"]).any()  # the fixture has pairs without a margin
