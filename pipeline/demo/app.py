"""``ovseg demo``: a local web app (Gradio) to segment your own images with your own words, variants side
by side, and to browse the mined pairs and the rejects.

    ovseg demo [--port 7860] [--host 127.0.0.1]

Serves the artifacts of the last ``dvc repro``: the proposer and the variants ``base``, ``ft_mpt``,
``adapter_ens`` and ``maskpool`` from ``artifacts/``, the demo benchmark's images from the world,
the pairs from ``data/pairs`` and the rejects from ``data/rejects``. Models load once, at start;
segmentation requests queue and run one at a time.

*Segment*: upload an image (or pick a demo image: its ground-truth classes fill the class list),
type classes (commas between classes, ``|`` between synonyms, as ``ovseg predict``), choose
variants and press *Segment*. Each variant gives the picture of ``ovseg predict``: the image with
the class colours blended in, at the image's own size (the segmented image: an image whose longer
side exceeds ``--max-side`` is resized to it first, and the page says so), and a legend of
``LEGEND_WIDTH`` (220) pixels to its right; the picture is therefore ``(W + 220) × max(H, legend
height)``. The table below lists every class with its colour and its share per variant. *Why*
adds, per variant, the proposals that decided the map, outlined and numbered, with the top classes
of the proposer, of CLIP and of the ensemble.

*Mined pairs*: pick or search a noun and page through its pairs (masked crops on their images)
sorted by similarity, softmax, margin, area or objectness; in the demo world each pair says
whether it is right against the truth. The rejects are listed by stage, kind and reason.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import paths
from core.cli import command, parser
from core.device import pick_device, set_threads
from core.params import load_params
from pipeline.demo.inputs import MAX_CLASSES, MAX_FILE_BYTES, MAX_SIDE, read_upload
from pipeline.demo.models import DEFAULT_VARIANTS, DemoModels
from pipeline.evaluation.miou import EvalConfig

if TYPE_CHECKING:
    import gradio as gr

    from pipeline.demo.examples import Examples
    from pipeline.demo.page import SegmentAnswer
    from pipeline.demo.pairs import PairsBrowser

LOG = logging.getLogger("ovseg.demo")
#: The page's API, as `gradio_client` sees it, is three named endpoints: ``/segment``, ``/pairs`` and ``/rejects``.
#: Every other event is one of the page's own callbacks, kept out of the API page and away from clients.
PAGE_ONLY: dict[str, Any] = {"api_visibility": "private"}
DEFAULT_PARAMS = Path("params.yaml")
ORDERS = ("highest first", "lowest first")
CSS = """
.status.error { color: #b00020; font-weight: 600; }
.status.ok { color: #1b5e20; }
table.shares td, table.shares th, table.why td, table.why th { padding: 2px 8px; text-align: left; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid #333; vertical-align: middle; }
"""


def build_app(
    models: DemoModels,
    *,
    examples: Examples | None = None,
    browser: PairsBrowser | None = None,
    max_side: int = MAX_SIDE,
    short_side: int | None = None,
) -> gr.Blocks:
    """The Gradio Blocks of the page (see the module docstring); not launched."""
    import gradio as gr

    answers = itertools.count(1)  # numbers the status lines, so that two equal messages differ
    # delete_cache: the pictures Gradio keeps for the page go after an hour
    with gr.Blocks(title="ovseg demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "# ovseg — open-vocabulary segmentation\nSegment an image among your own words with each "
            "variant, side by side; browse the mined mask–noun pairs."
        )
        segment_tab = build_segment_tab(models.variants, examples)
        wire_segment_tab(segment_tab, models, examples, answers, max_side=max_side, short_side=short_side)
        pairs_tab = build_pairs_tab(browser)
        wire_pairs(app, pairs_tab, browser)
        wire_rejects(app, pairs_tab, browser)
    return app


@dataclass(frozen=True)
class SegmentTab:
    """The *Segment* tab's controls, and its outputs: the status, the shares and, per variant, a column holding
    its picture and *Why* picture, and its *Why* table."""

    upload: gr.File
    example: gr.Dropdown
    preview: gr.Image
    classes: gr.Textbox
    chosen: gr.CheckboxGroup
    why: gr.Checkbox
    run: gr.Button
    status: gr.HTML
    columns: list[gr.Column]
    pictures: list[gr.Image]
    why_pictures: list[gr.Image]
    shares: gr.HTML
    why_tables: list[gr.HTML]


def build_segment_tab(variants: Sequence[str], examples: Examples | None) -> SegmentTab:
    """Lay out the *Segment* tab: the image and class inputs on one row, the status, then the variants' outputs."""
    import gradio as gr

    from pipeline.demo.page import slug, status_html

    with gr.Tab("Segment", elem_id="tab-segment"):
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                upload = gr.File(label="Image (PNG, JPEG, WebP, ...)", type="filepath", elem_id="upload", height=150)
                example = gr.Dropdown(
                    choices=examples.keys() if examples else [],
                    value=None,
                    label=f"or a {examples.name} benchmark image" if examples else "no demo images loaded",
                    interactive=bool(examples),
                    elem_id="example",
                )
            with gr.Column(scale=1, min_width=200):
                preview = gr.Image(label="input", interactive=False, height=230, elem_id="preview", format="png")
            with gr.Column(scale=2, min_width=320):
                classes = gr.Textbox(
                    label=f"Classes: commas between classes, '|' between synonyms (at most {MAX_CLASSES})",
                    placeholder="sky, grass|lawn, zebra",
                    lines=2,
                    elem_id="classes",
                )
                chosen = gr.CheckboxGroup(choices=variants, value=[variants[0]], label="Variants", elem_id="variants")
                why = gr.Checkbox(label="Why: show the proposals that decided each map", value=False, elem_id="why")
                run = gr.Button("Segment", variant="primary", elem_id="run")
        status = gr.HTML(
            status_html("upload an image or pick one, type classes, press Segment", True), elem_id="status-box"
        )
        columns, pictures, why_pictures = [], [], []
        with gr.Row(equal_height=True):
            for name in variants:
                with gr.Column(visible=False, min_width=560) as column:  # two a row on a wide screen
                    pictures.append(gr.Image(label=name, interactive=False, format="png", elem_id=f"out-{slug(name)}"))
                    why_pictures.append(
                        gr.Image(
                            label=f"{name}: why",
                            interactive=False,
                            format="png",
                            visible=False,
                            elem_id=f"why-picture-{slug(name)}",
                        )
                    )
                columns.append(column)
        shares = gr.HTML('<div id="shares"></div>', elem_id="shares-box")
        why_tables = [gr.HTML("", elem_id=f"why-box-{slug(name)}") for name in variants]
    return SegmentTab(
        upload, example, preview, classes, chosen, why, run, status, columns, pictures, why_pictures, shares, why_tables
    )


def segment_updates(answer: SegmentAnswer, variants: Sequence[str], number: int) -> list[Any]:
    """What a segmentation answer sets, in the order of the *Segment* tab's outputs: the status (numbered
    ``number``), the shares, then per variant whether its column shows, its picture, its *Why* picture and its
    *Why* table (each variant not in the answer hidden and emptied)."""
    import gradio as gr

    from pipeline.demo.page import shares_html, status_html, why_html

    by_name = {result.variant: result for result in answer.results}
    updates: list[Any] = [status_html(answer.message, answer.ok, number), shares_html(answer.classes, answer.results)]
    for name in variants:
        result = by_name.get(name)
        updates.append(gr.Column(visible=result is not None))
    for name in variants:
        result = by_name.get(name)
        updates.append(None if result is None else result.picture)
    for name in variants:
        result = by_name.get(name)
        why_picture = None if result is None else result.why_picture
        updates.append(gr.Image(value=why_picture, visible=why_picture is not None))
    for name in variants:
        result = by_name.get(name)
        updates.append("" if result is None else why_html(result))
    return updates


def wire_segment_tab(
    tab: SegmentTab,
    models: DemoModels,
    examples: Examples | None,
    answers: Iterator[int],
    *,
    max_side: int,
    short_side: int | None,
) -> None:
    """The *Segment* tab's events: *Segment* (or Enter in the classes) segments, one request at a time; picking
    an example shows it and fills its classes; an upload is checked and shown. ``answers`` numbers the status
    lines."""
    import gradio as gr

    from pipeline.demo.page import segment_answer, status_html

    def segment(upload_path, example_key, classes_text, chosen_variants, want_why):
        answer = segment_answer(
            models,
            examples,
            upload_path,
            example_key,
            classes_text,
            chosen_variants,
            bool(want_why),
            max_side=max_side,
            short_side=short_side,
        )
        return segment_updates(answer, models.variants, next(answers))

    outputs = [tab.status, tab.shares, *tab.columns, *tab.pictures, *tab.why_pictures, *tab.why_tables]
    inputs = [tab.upload, tab.example, tab.classes, tab.chosen, tab.why]
    tab.run.click(segment, inputs, outputs, concurrency_limit=1, concurrency_id="models", api_name="segment")
    tab.classes.submit(segment, inputs, outputs, concurrency_limit=1, concurrency_id="models", **PAGE_ONLY)

    def picked(key):
        if not key or examples is None:
            return gr.update(), None, gr.update()
        pixels, text = examples.load(key)
        return None, pixels, text

    def uploaded(path):
        try:
            image = read_upload(path, max_side=max_side)
        except ValueError as exc:
            return None, None, status_html(str(exc), False, next(answers))
        return None, image.pixels, status_html(f"uploaded {image.describe()}", True, next(answers))

    tab.example.input(picked, [tab.example], [tab.upload, tab.preview, tab.classes], queue=False, **PAGE_ONLY)
    tab.upload.upload(uploaded, [tab.upload], [tab.example, tab.preview, tab.status], queue=False, **PAGE_ONLY)


@dataclass(frozen=True)
class PairsTab:
    """The *Mined pairs* tab: the pairs' controls and outputs, and the rejects' (in an accordion)."""

    search: gr.Textbox
    noun: gr.Dropdown
    sort: gr.Dropdown
    order: gr.Radio
    previous: gr.Button
    page: gr.Number
    following: gr.Button
    status: gr.HTML
    gallery: gr.Gallery
    table: gr.Dataframe
    reason: gr.Dropdown
    reject_page: gr.Number
    rejects: gr.Dataframe


def build_pairs_tab(browser: PairsBrowser | None) -> PairsTab:
    """Lay out the *Mined pairs* tab: noun, sort and page controls, the page's pairs as a gallery and a table,
    and the rejects by reason."""
    import gradio as gr

    from pipeline.demo.pairs import CAPTION, REJECT_COLUMNS, SORT_KEYS

    with gr.Tab("Mined pairs", elem_id="tab-pairs"):
        first = browser.nouns()[0][0] if browser is not None and browser.nouns() else None
        with gr.Row():
            search = gr.Textbox(label="search a noun", elem_id="noun-search", scale=2)
            noun = gr.Dropdown(
                choices=[(f"{n} ({c})", n) for n, c in browser.nouns()] if browser else [],
                value=first,
                label="noun (pairs)",
                elem_id="noun",
                scale=2,
            )
            sort = gr.Dropdown(choices=list(SORT_KEYS), value="similarity", label="sort by", elem_id="sort")
            order = gr.Radio(choices=list(ORDERS), value=ORDERS[0], label="order", elem_id="order")
        with gr.Row():
            previous = gr.Button("◀ previous", elem_id="previous", size="sm")
            page = gr.Number(value=1, precision=0, minimum=1, label="page", elem_id="page")
            following = gr.Button("next ▶", elem_id="next", size="sm")
        status = gr.HTML("", elem_id="pairs-status-box")
        judged = browser is not None and browser.judge is not None
        frames = "; frame: green right against the truth, red wrong, grey not judged" if judged else ""
        gallery = gr.Gallery(
            label=f"pairs: {CAPTION}{frames}", columns=6, height="auto", elem_id="pairs-gallery", format="png"
        )
        table = gr.Dataframe(label="this page's pairs", interactive=False, elem_id="pairs-table")
        with gr.Accordion("Rejects, by stage/kind/reason", open=False):
            reasons = browser.reject_reasons() if browser else []
            reason = gr.Dropdown(
                choices=[(f"{r} ({c})", r) for r, c in reasons],
                value=reasons[0][0] if reasons else None,
                label="reason",
                elem_id="reason",
            )
            reject_page = gr.Number(value=1, precision=0, minimum=1, label="page", elem_id="reject-page")
            rejects = gr.Dataframe(headers=list(REJECT_COLUMNS), interactive=False, elem_id="rejects-table")
    return PairsTab(
        search, noun, sort, order, previous, page, following, status, gallery, table, reason, reject_page, rejects
    )


def wire_pairs(app: gr.Blocks, tab: PairsTab, browser: PairsBrowser | None) -> None:
    """The pairs' events: a new search, noun, sort or order shows its first page, the page number that page,
    *previous* and *next* the neighbours; the page opens on the first noun's first page."""
    import gradio as gr

    from pipeline.demo.page import pairs_answer
    from pipeline.demo.pairs import TABLE_COLUMNS

    def show_pairs(search_text, noun_value, sort_key, order_value, page_value, step=0):
        answer = pairs_answer(
            browser, search_text, noun_value, sort_key, order_value == ORDERS[0], (page_value or 1) + step
        )
        if answer.page is None:
            return answer.status, gr.Dropdown(choices=answer.nouns, value=None), 1, [], None
        rows = answer.page.rows
        headers = list(rows[0]) if rows else list(TABLE_COLUMNS)
        table = gr.Dataframe(value=[[row[key] for key in headers] for row in rows], headers=headers)
        return (
            answer.status,
            gr.Dropdown(choices=answer.nouns, value=answer.noun),
            answer.page.page,
            list(answer.page.items),
            table,
        )

    def first_page(search_text, noun_value, sort_key, order_value, _page_value):
        return show_pairs(search_text, noun_value, sort_key, order_value, 1)

    def turn_page(step):
        def turn(search_text, noun_value, sort_key, order_value, page_value):
            return show_pairs(search_text, noun_value, sort_key, order_value, page_value, step=step)

        return turn

    pairs_inputs = [tab.search, tab.noun, tab.sort, tab.order, tab.page]
    pairs_outputs = [tab.status, tab.noun, tab.page, tab.gallery, tab.table]
    for trigger in (tab.search.submit, tab.noun.input, tab.sort.input, tab.order.input):  # another list: its first page
        trigger(first_page, pairs_inputs, pairs_outputs, **PAGE_ONLY)
    tab.page.submit(show_pairs, pairs_inputs, pairs_outputs, api_name="pairs")
    tab.previous.click(turn_page(-1), pairs_inputs, pairs_outputs, **PAGE_ONLY)
    tab.following.click(turn_page(1), pairs_inputs, pairs_outputs, **PAGE_ONLY)
    app.load(show_pairs, pairs_inputs, pairs_outputs, **PAGE_ONLY)


def wire_rejects(app: gr.Blocks, tab: PairsTab, browser: PairsBrowser | None) -> None:
    """The rejects' events: a reason or a page number shows that page of the reason's rejects, as does opening
    the page."""
    from pipeline.demo.pairs import REJECT_COLUMNS

    def show_rejects(reason_value, page_value):
        if browser is None or not reason_value:
            return 1, []
        rows, number, _ = browser.rejects_page(reason_value, page_value or 1)
        return number, [[row[key] for key in REJECT_COLUMNS] for row in rows]

    inputs, outputs = [tab.reason, tab.reject_page], [tab.reject_page, tab.rejects]
    tab.reject_page.submit(show_rejects, inputs, outputs, api_name="rejects")
    tab.reason.input(show_rejects, inputs, outputs, **PAGE_ONLY)
    app.load(show_rejects, inputs, outputs, **PAGE_ONLY)


def launch(app, host: str, port: int, *, block: bool = True):
    """Queue requests (one segmentation at a time) and serve ``app`` on ``host:port``."""
    import gradio as gr

    app.queue(default_concurrency_limit=1, max_size=64)
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )  # no web fonts: the page works offline
    return app.launch(
        server_name=host,
        server_port=port,
        max_file_size=MAX_FILE_BYTES,
        show_error=True,
        prevent_thread_lock=not block,
        theme=theme,
        css=CSS,
        ssr_mode=False,
    )


def settings_from(params: Path | None) -> tuple[EvalConfig, str]:
    """The ``evaluate`` settings of ``params`` (the default ``params.yaml`` when present), else the defaults."""
    if params is None and not DEFAULT_PARAMS.is_file():
        return EvalConfig(), "default settings"
    path = DEFAULT_PARAMS if params is None else params
    return EvalConfig.from_params(load_params("evaluate", path)), f"the evaluate settings of {path}"


def load_sources(args: argparse.Namespace):
    """``(models, examples, browser)`` as the arguments say; optional parts missing are announced, not fatal."""
    from pipeline.datasets.manifest import load_world
    from pipeline.demo.examples import Examples
    from pipeline.demo.pairs import PairsBrowser
    from pipeline.mining.pair_pictures import sheet_judge

    settings, where = settings_from(args.params)
    world = None
    if args.world.is_file():
        world = load_world(args.world)
    else:
        print(f"demo: {args.world}: no world manifest: no demo images, no seen/unseen split, no pairs")
    device = pick_device(args.device)
    models = DemoModels.load(
        args.artifacts,
        proposer=args.proposer,
        variants=args.variants,
        clips=args.clip,
        settings=settings,
        device=device,
        world_classes=world.classes if world else None,
    )
    print(f"demo: loaded {', '.join(models.variants)} on {device} with {where}")
    examples = None
    if world is not None and args.benchmark in world.benchmark_roots:
        examples = Examples(world.benchmark(args.benchmark))
    browser = None
    if world is not None and args.pairs.is_dir():
        browser = PairsBrowser.load(args.pairs, world.images_dir, args.rejects, sheet_judge(world))
        print(f"demo: {browser.pairs.num_rows} pairs from {args.pairs}, {browser.rejects.num_rows} rejects")
    elif world is not None:
        print(f"demo: {args.pairs}: no pairs folder: the pairs tab is empty")
    return models, examples, browser


def demo_parser() -> argparse.ArgumentParser:
    """The command line of ``ovseg demo``."""
    cli = parser("ovseg demo", __doc__)
    cli.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    cli.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    cli.add_argument(
        "--artifacts",
        type=Path,
        default=paths.ARTIFACTS,
        help="folder holding proposer/, clip_<name>/ and adapter_<name>/ (default: artifacts)",
    )
    cli.add_argument("--proposer", type=Path, default=None, help="proposer folder (default: ARTIFACTS/proposer)")
    cli.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        metavar="VARIANT",
        help=f"variants to offer (default: {' '.join(DEFAULT_VARIANTS)}; any two-stage variant of "
        "`ovseg evaluate`, e.g. mpt, ft, ft_adapter_ens)",
    )
    cli.add_argument(
        "--clip",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also offer the crop path with this CLIP folder (as crops:<folder name>); repeatable",
    )
    cli.add_argument("--world", type=Path, default=paths.WORLD_MANIFEST, help="world manifest (default: %(default)s)")
    cli.add_argument("--benchmark", default="demo", help="the benchmark whose images can be picked (default: demo)")
    cli.add_argument("--pairs", type=Path, default=paths.PAIRS, help="pairs shards (default: %(default)s)")
    cli.add_argument(
        "--rejects", type=Path, default=paths.REJECTS, help=f"folder of reject shard folders (default: {paths.REJECTS})"
    )
    cli.add_argument(
        "--params",
        type=Path,
        default=None,
        help="take the segmenter settings from this file's evaluate section (default: params.yaml "
        "when present, else the defaults)",
    )
    cli.add_argument(
        "--max-side", type=int, default=MAX_SIDE, help=f"resize larger images to this longer side (default: {MAX_SIDE})"
    )
    cli.add_argument(
        "--short-side",
        type=int,
        default=None,
        help="segment at this shorter side, pictures at the image's size (default: the evaluate "
        "settings' short_side; null there: the image's own size)",
    )
    cli.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per core)")
    cli.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default: auto)")
    return cli


@command("demo")
def main(argv: list[str] | None = None) -> int:
    args = demo_parser().parse_args(argv)
    for flag, value in (("--max-side", args.max_side), ("--short-side", args.short_side), ("--port", args.port)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("the demo needs gradio: pip install -e '.[demo]'") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_threads(args.threads, "--threads")
    models, examples, browser = load_sources(args)
    short_side = args.short_side
    if short_side is None:
        short_side = settings_from(args.params)[0].short_side
    app = build_app(models, examples=examples, browser=browser, max_side=args.max_side, short_side=short_side)
    launch(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
