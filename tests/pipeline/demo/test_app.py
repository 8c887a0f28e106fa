"""The page's wiring: which pairs page each control of the *Mined pairs* tab asks for."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pipeline.demo.page as page
from pipeline.demo.app import build_app


def test_the_pairs_controls_ask_for_the_first_the_same_or_the_next_page(monkeypatch):
    asked = []

    def pairs_answer(browser, search, noun, sort, descending, page_number):
        asked.append((search, noun, sort, descending, page_number))
        return page.PairsAnswer(False, "recorded")

    monkeypatch.setattr(page, "pairs_answer", pairs_answer)
    app = build_app(SimpleNamespace(variants=["base"]))
    handlers = {}
    for function in app.fns.values():
        for block_id, event in function.targets:
            if block_id in app.blocks:
                handlers[(app.blocks[block_id].elem_id, event)] = function.fn
    values = ("dog", "dog", "similarity", "descending", 3)
    for control in (
        ("noun-search", "submit"),
        ("noun", "input"),
        ("sort", "input"),
        ("order", "input"),
        ("page", "submit"),
        ("previous", "click"),
        ("next", "click"),
    ):
        handlers[control](*values)
    assert [request[-1] for request in asked] == [1, 1, 1, 1, 3, 2, 4]
    assert all(request[:3] == values[:3] for request in asked)


PUBLIC_ENDPOINTS = {"/segment", "/pairs", "/rejects"}


def test_the_api_lists_only_the_named_endpoints():
    app = build_app(SimpleNamespace(variants=["base"]))
    info = app.get_api_info(all_endpoints=True)
    assert set(info["named_endpoints"]) == PUBLIC_ENDPOINTS
    assert info["unnamed_endpoints"] == {}


def test_gradio_client_sees_only_the_named_endpoints():
    from gradio_client import Client

    from pipeline.demo.app import launch

    app = build_app(SimpleNamespace(variants=["base"]))
    launch(app, "127.0.0.1", free_port(), block=False)
    try:
        api = Client(app.local_url, verbose=False).view_api(print_info=False, return_format="dict")
    finally:
        app.close()
    assert set(api["named_endpoints"]) == PUBLIC_ENDPOINTS
    assert api["unnamed_endpoints"] == {}
    assert [p["parameter_name"] for p in api["named_endpoints"]["/rejects"]["parameters"]] == [
        "reason_value",
        "page_value",
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
