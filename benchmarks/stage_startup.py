"""What a stage process pays besides its work: importing its module, loading a CLIP folder, ending.

DVC runs each stage as a process of its own (29 in the real-size smoke run), so each pays these.
For every stage module asked for, in fresh processes: the seconds to import it, and the seconds
from the end of its work to the process's end, through the interpreter's full teardown
(``sys.exit``) and through :func:`core.cli.exit_process`, which the stages end with. Then a CLIP
folder of ``--model`` (random weights, seed 0, written to a temporary folder) loaded by
:func:`model.clip.load_clip_folder` ``--loads`` times in a fresh process: the seconds of each
load, and the process's peak RSS before and after. Medians over ``--repeats`` processes.

    python benchmarks/stage_startup.py [--stages evaluate clip_adaptation] [--model ViT-B-16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the children run from here and import its packages

ENDINGS = {"teardown": "sys.exit(0)", "exit_process": "from core.cli import exit_process; exit_process(0)"}

LOAD = """
import json, resource, time
from model.clip import load_clip_folder
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seconds = []
for _ in range({loads}):
    start = time.perf_counter()
    bundle = load_clip_folder({folder!r}, "cpu")
    seconds.append(time.perf_counter() - start)
    del bundle
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "rss_before_gib": before / 2**20, "rss_after_gib": after / 2**20}}))
"""


def run_python(code: str) -> tuple[str, float]:
    """stdout of ``python -c code`` run from the repository root, and the wall-clock time it ended at."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout, time.time()


def stage_costs(module: str, ending: str) -> tuple[float, float]:
    """Seconds to import ``module`` and seconds from then to the process's end, with ``ending``."""
    code = (
        f"import sys, time\nstart = time.perf_counter()\nimport {module}\n"
        f"print(time.perf_counter() - start, time.time(), flush=True)\n{ENDINGS[ending]}\n"
    )
    out, ended = run_python(code)
    imported, at = map(float, out.split())
    return imported, ended - at


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument(
        "--stages",
        nargs="*",
        default=["evaluate", "clip_adaptation", "proposer", "crops"],
        help="stage modules under stages/ (none: only the CLIP load)",
    )
    cli.add_argument("--model", default="ViT-B-16", help="open_clip architecture of the CLIP folder")
    cli.add_argument("--loads", type=int, default=3, help="loads of the folder in one process (0: no load)")
    cli.add_argument("--repeats", type=int, default=3, help="processes per figure (medians)")
    args = cli.parse_args()

    if args.stages:
        print(f"{'stage':<14} {'import s':>9} " + " ".join(f"{f'end ({e}) s':>22}" for e in ENDINGS))
    for stage in args.stages:
        runs = {ending: [stage_costs(f"stages.{stage}", ending) for _ in range(args.repeats)] for ending in ENDINGS}
        imported = statistics.median(i for results in runs.values() for i, _ in results)
        ends = [statistics.median(e for _, e in runs[ending]) for ending in ENDINGS]
        print(f"{stage:<14} {imported:>9.2f} " + " ".join(f"{e:>22.2f}" for e in ends))
    if args.loads < 1:
        return

    with tempfile.TemporaryDirectory() as tmp:  # written by a child: a fork would pass this process's peak RSS on
        folder = Path(tmp) / "clip"
        run_python(
            f"from model.clip import build_clip, save_clip_folder\n"
            f"save_clip_folder(build_clip({args.model!r}, device='cpu', seed=0), {str(folder)!r})"
        )
        size = (folder / "open_clip_model.safetensors").stat().st_size
        results = [
            json.loads(run_python(LOAD.format(folder=str(folder), loads=args.loads))[0]) for _ in range(args.repeats)
        ]
    first = statistics.median(r["seconds"][0] for r in results)
    warm = statistics.median(s for r in results for s in r["seconds"][1:]) if args.loads > 1 else float("nan")
    before = statistics.median(r["rss_before_gib"] for r in results)
    after = statistics.median(r["rss_after_gib"] for r in results)
    print(
        f"load_clip_folder, {args.model} ({size / 2**20:.0f} MiB of weights): first load {first:.2f} s, "
        f"later loads {warm:.2f} s; peak RSS {before:.2f} GiB after the imports, {after:.2f} GiB after the loads"
    )


if __name__ == "__main__":
    main()
