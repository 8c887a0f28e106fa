"""The docs against their sources: every inserted figure as its file gives it, every quoted command, flag and
params key existing."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from pipeline.project import docs
from pipeline.project.dag import downstream_of_param, load_stages
from pipeline.project.doc_quotes import has_key, quoted_commands, quoted_param_keys
from stages.cli import ALIASES, COMMANDS
from stages.cli import main as ovseg

ROOT = Path(__file__).resolve().parents[3]
PAGES = docs.doc_files(ROOT)
PROJECT_PACKAGES = {"core", "model", "pipeline", "stages"}
HELP_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_inserted_block_matches_its_source() -> None:
    assert docs.stale_blocks(ROOT) == []


def test_a_wrong_number_in_a_copy_is_reported(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "mine.json").write_text('{"pairs": 7118}')
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("<!-- insert: json:metrics/mine.json#pairs -->7,181<!-- /insert --> pairs\n")
    assert docs.stale_blocks(tmp_path) == [
        "README.md: json:metrics/mine.json#pairs: written '7,181', source gives '7,118'"
    ]
    docs.render(tmp_path)
    rendered = (tmp_path / "README.md").read_text()
    assert rendered == "<!-- insert: json:metrics/mine.json#pairs -->7,118<!-- /insert --> pairs\n"
    assert docs.stale_blocks(tmp_path) == []


def test_a_table_section_keeps_only_the_rows_asked_for(tmp_path: Path) -> None:
    (tmp_path / "r.md").write_text("# R\n\n## T\n\n| v | x |\n| --- | ---: |\n| `a` | 1 |\n| `b` | 2 |\n\n## U\n\nno\n")
    assert docs.insert("md:r.md#T rows=b", tmp_path) == "\n| v | x |\n| --- | ---: |\n| `b` | 2 |\n"


def test_the_seed_claims_name_each_claim_and_whether_it_holds() -> None:
    summary = docs.seed_study(ROOT)
    block = docs.insert("seeds:claims", ROOT)
    for claim in summary["claims"]:
        assert f"`{claim['better']}` − `{claim['worse']}`" in block
    text = docs.insert("seeds:summary", ROOT)
    supported, _, unsupported = text.partition("not claimed")
    for claim in summary["claims"]:
        if claim["holds"]:
            assert claim["what"] in supported
        else:
            assert claim["what"] not in text
            assert f"`{claim['better']}` > `{claim['worse']}`" in unsupported


def test_a_rerun_list_follows_the_dag() -> None:
    stages = load_stages(ROOT / "dvc.yaml")
    rerun = downstream_of_param("finetune.max_pairs", stages)
    assert {"finetune", "finetune_gt", "base_clip_longer", "prompt_tune@ft", "crops", "report"} <= set(rerun)
    assert not {"world", "base_clip", "proposer", "mine", "prompt_tune@base", "tune"} & set(rerun)
    assert downstream_of_param("evaluate.lam", stages)[-1] == "report"
    assert "propose" not in downstream_of_param("evaluate.lam", stages)


@cache
def help_text(program: str, command: str | None) -> str:
    """What ``--help`` prints for an ``ovseg`` command or a ``python -m`` module, run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        if program == "ovseg":
            code = ovseg([command, "--help"] if command else ["--help"])
            raise SystemExit(code)
        importlib.import_module(program).main(["--help"])
    assert stop.value.code in (0, None), f"{program} {command or ''} --help exited {stop.value.code}"
    return out.getvalue()


def quotes() -> list[tuple[str, str, str | None, tuple[str, ...], str]]:
    found = []
    for path in PAGES:
        for quote in quoted_commands(path.read_text(encoding="utf-8")):
            if quote.command is not None and quote.command.isupper():
                continue  # `ovseg COMMAND --help`
            found.append((page_id(path), quote.program, quote.command, tuple(quote.flags), quote.text))
    return found


@pytest.mark.parametrize(("page", "program", "command", "flags", "text"), quotes(), ids=lambda v: str(v)[:40])
def test_a_quoted_command_and_its_flags_exist(
    page: str, program: str, command: str | None, flags: tuple[str, ...], text: str
) -> None:
    if program == "ovseg":
        assert command is None or command in COMMANDS or command in ALIASES, f"{page}: {text}: no command {command!r}"
    elif program.split(".")[0] not in PROJECT_PACKAGES:  # `python -m venv`, `python -m pip`: exists, not ours
        assert importlib.util.find_spec(program) is not None, f"{page}: {text}: no module {program}"
        return
    help_flags = set(HELP_FLAG.findall(help_text(program, command)))
    unknown = [flag for flag in flags if flag not in help_flags]
    assert not unknown, f"{page}: {text}: unknown flags {unknown}"


def test_the_docs_quote_commands() -> None:
    assert len(quotes()) > 20


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_quoted_params_key_is_in_params_yaml(path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    keys = quoted_param_keys(path.read_text(encoding="utf-8"), params)
    assert [key for key in sorted(keys) if not has_key(params, key)] == []


def test_an_unknown_flag_and_an_unknown_key_are_found() -> None:
    text = "```bash\novseg gt-gauge artifacts/clip_base --per-clas\ndvc exp run -S finetune.max_pair=1\n```\n"
    (quote,) = quoted_commands(text)
    assert quote.command == "gt-gauge"
    assert quote.flags == ["--per-clas"]
    assert "--per-clas" not in HELP_FLAG.findall(help_text("ovseg", "gt-gauge"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert quoted_param_keys(text, params) == {"finetune.max_pair"}
    assert not has_key(params, "finetune.max_pair")


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_quoted_file_of_the_project_exists(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    named = set(re.findall(r"(?:python3? |pytest )((?:benchmarks|tests)/[\w/.-]+\.py)", text))
    named |= set(re.findall(r"\]\(((?:docs/|\.\./|reports/)?[\w/.-]+\.(?:md|png|csv|json))\)", text))
    missing = [name for name in sorted(named) if not (path.parent / name).exists() and not (ROOT / name).exists()]
    assert missing == []


def test_the_readme_fits_and_its_dag_names_every_stage() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    picture = readme.split("```text\n", 1)[1].split("```", 1)[0]
    names = {stage.name.split("@")[0] for stage in load_stages(ROOT / "dvc.yaml")}
    assert [name for name in sorted(names) if name not in picture] == []


def listed_outputs(page: str) -> list[re.Pattern[str]]:
    """The paths of the page's output listing (its ```text block), ``<name>`` standing for one path part."""
    block = page.split("## Every output", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    patterns = []
    for line in block.splitlines():
        names = re.split(r"\s{2,}", line.strip())[0]
        for name in names.split(", "):
            if "/" in name:
                patterns.append(re.compile(re.sub(r"<[^>]+>", "[^/]+", re.escape(name))))
    return patterns


def test_getting_started_lists_every_output_of_the_dag() -> None:
    patterns = listed_outputs((ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8"))
    outs = {out for stage in load_stages(ROOT / "dvc.yaml") for out in stage.outs}
    assert [out for out in sorted(outs) if not any(p.fullmatch(out) for p in patterns)] == []


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_link_to_a_section_finds_its_heading(path: Path) -> None:
    broken = []
    for target, anchor in re.findall(r"\]\(([\w./-]*\.md|)#([\w-]+)\)", path.read_text(encoding="utf-8")):
        page = (path.parent / target) if target else path
        headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
        if anchor not in {slug(h) for h in headings}:
            broken.append(f"{target}#{anchor}")
    assert broken == []
