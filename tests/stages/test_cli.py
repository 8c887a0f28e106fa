"""The `ovseg` command: dispatch by name, former names as aliases, an example under each command's help."""

import re
import shlex

import pytest

from stages.cli import ALIASES, COMMANDS, EXAMPLES, main


def test_every_alias_names_a_command() -> None:
    assert ALIASES == {"crop-bench": "gt-gauge"}
    assert all(new in COMMANDS and old not in COMMANDS for old, new in ALIASES.items())


@pytest.mark.parametrize("name", ["gt-gauge", "crop-bench"])
def test_gt_gauge_and_its_former_name_run_the_same_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ovseg gt-gauge ")


def test_help_lists_the_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "aliases: crop-bench = gt-gauge" in capsys.readouterr().out


def test_an_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crops"]) == 2
    assert "unknown command 'crops'" in capsys.readouterr().err


def test_help_lists_every_command_with_its_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, purpose) in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(purpose)}$", out, re.MULTILINE), name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_shows_an_example_with_known_flags(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    example = re.search(r"^(?:example|Example): *\n? *(ovseg .+)$", out, re.MULTILINE | re.IGNORECASE)
    assert example is not None, out
    words = shlex.split(example.group(1), comments=True)
    assert words[:2] == ["ovseg", name]
    known = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", out.split(example.group(1))[0]))
    assert [w for w in words if w.startswith("-") and w not in known] == []


def test_every_command_has_an_example() -> None:
    assert set(EXAMPLES) == set(COMMANDS)
