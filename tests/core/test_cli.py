import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import paths
from core.cli import (
    add_benchmark_options,
    add_params_option,
    add_path_options,
    chosen_benchmarks,
    command,
    parser,
    run_command,
)


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def missing() -> None:
        raise FileNotFoundError("data/world/manifest.json: file not found")

    assert run_command("world", missing) == 2
    assert capsys.readouterr().err == "world: data/world/manifest.json: file not found\n"


def test_a_key_error_is_printed_without_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    @command("evaluate")
    def main(argv: list[str] | None = None) -> int:
        raise KeyError("unknown benchmark 'ade999'")

    assert main([]) == 2
    assert capsys.readouterr().err == "evaluate: unknown benchmark 'ade999'\n"


def test_success_and_bugs_pass_through() -> None:
    assert run_command("x", lambda: None) == 0
    assert run_command("x", lambda: 3) == 3
    with pytest.raises(ZeroDivisionError):  # a bug is not bad input: its traceback is kept
        run_command("x", lambda: 1 // 0)


def test_parser_describes_with_the_first_paragraph() -> None:
    assert parser("ovseg x", "First paragraph.\n\nDetails.").description == "First paragraph."


def test_path_options_are_paths_with_their_default_in_the_help() -> None:
    cli = parser("ovseg x", None)
    add_params_option(cli)
    add_path_options(cli, ("out", Path("data/out"), "output folder"), ("metrics", Path("m.json"), "metrics file"))
    assert vars(cli.parse_args([])) == {"params": None, "out": Path("data/out"), "metrics": Path("m.json")}
    args = cli.parse_args(["--params", "p.yaml", "--out", "elsewhere"])
    assert args.params == Path("p.yaml") and args.out == Path("elsewhere")
    text = " ".join(cli.format_help().split())
    assert "params file (default: params.yaml)" in text and "output folder (default: data/out)" in text


def test_exit_process_keeps_the_code_the_output_and_the_exit_handlers(tmp_path) -> None:
    script = textwrap.dedent(f"""
        import atexit, logging, tempfile
        from core.cli import exit_process
        handler = logging.FileHandler({str(tmp_path / "log.txt")!r}, delay=True)
        logging.getLogger("x").addHandler(handler)
        logging.getLogger("x").warning("logged")
        folder = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})
        atexit.register(print, "handler ran")
        print("buffered, no newline", end="")
        exit_process(3)
        print("never")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stdout == "buffered, no newlinehandler ran\n"
    assert (tmp_path / "log.txt").read_text() == "logged\n"  # logging's exit handler flushed it
    assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]  # the temporary folder was removed


def test_benchmark_options_default_to_the_params_benchmarks(tmp_path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  benchmarks: [demo, voc20]\n")
    cli = parser("ovseg x", None)
    add_benchmark_options(cli)
    args = cli.parse_args(["--params", str(params)])
    assert (args.world, args.artifacts) == (paths.WORLD_MANIFEST, paths.ARTIFACTS)
    assert chosen_benchmarks(args) == ["demo", "voc20"]
    assert chosen_benchmarks(cli.parse_args(["--params", str(params), "--benchmark", "pc59"])) == ["pc59"]
