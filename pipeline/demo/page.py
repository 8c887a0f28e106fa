"""What the page shows for each request, without Gradio: answers as plain values and their HTML.

Every request ends in an answer with a status line: ``ok`` with what was done, or ``error``
with the message of the bad input (an :class:`~pipeline.demo.inputs.InputError`) — never an
exception out of a handler, so the server keeps running and the page says what went wrong.
An unexpected error is reported the same way, naming its type, and logged with its traceback.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.classnames import display_names, split_synonyms
from pipeline.demo.examples import Examples
from pipeline.demo.inputs import InputError, InputImage, from_array, read_classes, read_upload
from pipeline.demo.models import DemoModels, VariantResult
from pipeline.demo.pairs import PairsBrowser, PairsPage
from pipeline.evaluation.label_overlay import class_colour

LOG = logging.getLogger("ovseg.demo")


def slug(name: str) -> str:
    """An HTML id fragment of a variant name: ``crops:my clip`` → ``crops-my-clip``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def status_html(message: str, ok: bool, number: int | None = None) -> str:
    """The status line: ``<div id="status" class="ok|error">``; ``number`` (``data-answer``) tells answers apart."""
    kind = "ok" if ok else "error"
    numbered = "" if number is None else f' data-answer="{number}"'
    return f'<div id="status" class="status {kind}" data-status="{kind}"{numbered}>{html.escape(message)}</div>'


@dataclass
class SegmentAnswer:
    """A segmentation request's answer: the status, the segmented image's description and each variant's result."""

    ok: bool
    message: str
    image: InputImage | None = None
    classes: list[str] = field(default_factory=list)
    results: list[VariantResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        return status_html(self.message, self.ok)


def input_image(upload: str | Path | None, example: str | None, examples: Examples | None, max_side: int) -> InputImage:
    """The image to segment: the upload, else the picked example; :class:`InputError` when there is neither."""
    if upload:
        return read_upload(upload, max_side=max_side)
    if example:
        if examples is None:
            raise InputError("no demo images are loaded (start the demo with a world that has the benchmark)")
        pixels, _ = examples.load(example)
        return from_array(pixels, f"{examples.name} image {example}", max_side=max_side)
    raise InputError("no image: upload one, or pick a demo image")


def segment_answer(
    models: DemoModels,
    examples: Examples | None,
    upload: str | Path | None,
    example: str | None,
    classes_text: str | None,
    variants: Sequence[str] | None,
    why: bool,
    *,
    max_side: int,
    short_side: int | None,
) -> SegmentAnswer:
    """Check the inputs, segment with each chosen variant and say what was done (or what is wrong)."""
    try:
        classes = read_classes(classes_text)
        if not variants:
            raise InputError("no variant chosen: tick at least one")
        image = input_image(upload, example, examples, max_side)
        results = models.segment(image.pixels, classes, list(variants), why=why, short_side=short_side)
    except InputError as exc:
        return SegmentAnswer(False, str(exc))
    except Exception as exc:  # the page must answer; the log keeps the traceback
        LOG.exception("segmentation failed")
        return SegmentAnswer(False, f"internal error ({type(exc).__name__}: {exc}); the server log has the details")
    timings = ", ".join(f"{result.variant} {result.seconds:.2f} s" for result in results)
    working = "" if short_side is None else f"; segmented at shorter side {short_side}"
    message = f"segmented {image.describe()} among {len(classes)} classes{working}: {timings}"
    return SegmentAnswer(True, message, image, classes, results)


def shares_html(classes: Sequence[str], results: Sequence[VariantResult]) -> str:
    """The legend as a table: each class's colour (as in the pictures), name, synonyms and its share per variant."""
    if not results:
        return '<div id="shares"></div>'
    names = display_names(classes)
    head = "".join(f"<th>{html.escape(result.variant)}</th>" for result in results)
    rows = []
    for index, (name, class_name) in enumerate(zip(names, classes)):
        red, green, blue = class_colour(index)
        synonyms = ", ".join(split_synonyms(class_name)[1:])
        cells = "".join(f"<td>{result.shares[name]:.1f} %</td>" for result in results)
        rows.append(
            f'<tr class="class-row" data-class="{html.escape(name)}">'
            f'<td><span class="swatch" style="background: rgb({red}, {green}, {blue})"></span></td>'
            f'<td class="class-name">{html.escape(name)}</td><td class="synonyms">{html.escape(synonyms)}</td>'
            f"{cells}</tr>"
        )
    cells = "".join(f"<td>{result.unlabelled:.1f} %</td>" for result in results)
    rows.append(f'<tr class="unlabelled"><td></td><td>unlabelled</td><td></td>{cells}</tr>')
    return (
        f'<table id="shares" class="shares"><thead><tr><th></th><th>class</th><th>synonyms</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def why_html(result: VariantResult) -> str:
    """The deciding proposals of one variant as a table (numbers as on its outline picture)."""
    if result.why is None:
        return ""

    def top(pairs: Sequence[tuple[str, float]]) -> str:
        return ", ".join(f"{html.escape(name)} {probability:.2f}" for name, probability in pairs)

    rows = "".join(
        f"<tr><td>{number}</td><td>{view.decided * 100:.1f} %</td><td>{view.objectness:.2f}</td>"
        f"<td>{top(view.proposer)}</td><td>{top(view.clip)}</td><td><b>{top(view.ensemble[:1])}</b></td></tr>"
        for number, view in enumerate(result.why.proposals, start=1)
    )
    if not rows:
        rows = '<tr><td colspan="6">no proposal decides 1 % of the image</td></tr>'
    return (
        f"<h4>why: {html.escape(result.variant)}</h4>"
        f'<table class="why" id="why-{slug(result.variant)}"><thead><tr><th>#</th><th>decides</th>'
        "<th>objectness</th><th>proposer (top 3)</th><th>CLIP (top 3)</th><th>ensemble</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


@dataclass
class PairsAnswer:
    """A pairs request's answer: the status, the nouns to choose from (label, noun), the chosen noun and its page."""

    ok: bool
    message: str
    nouns: list[tuple[str, str]] = field(default_factory=list)
    noun: str | None = None
    page: PairsPage | None = None

    @property
    def status(self) -> str:
        return status_html(self.message, self.ok).replace('id="status"', 'id="pairs-status"')


def pairs_answer(
    browser: PairsBrowser | None, search: str | None, noun: str | None, sort: str, descending: bool, page: object
) -> PairsAnswer:
    """The nouns matching ``search`` and a page of ``noun``'s pairs (the first match when ``noun`` is not one)."""
    if browser is None:
        return PairsAnswer(False, "no pairs loaded (start the demo with --pairs pointing at the mine stage's output)")
    try:
        found = browser.nouns(search or "")
        nouns = [(f"{name} ({count})", name) for name, count in found]
        if not found:
            return PairsAnswer(False, f"no noun contains {search!r}", nouns)
        if noun not in {name for name, _ in found}:
            noun = found[0][0]
        result = browser.page(noun, sort, descending, page)
    except InputError as exc:
        return PairsAnswer(False, str(exc))
    except Exception as exc:
        LOG.exception("pairs page failed")
        return PairsAnswer(False, f"internal error ({type(exc).__name__}: {exc}); the server log has the details")
    return PairsAnswer(True, result.describe(), nouns, noun, result)
