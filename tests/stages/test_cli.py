"""The `ovseg` command: dispatch by name, former names as aliases."""

import pytest

from stages.cli import ALIASES, COMMANDS, main


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
