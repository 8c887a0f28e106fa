"""What portable numerics cost: training steps of the demo's two biggest stages under portable and native.

    python benchmarks/numerics_cost.py [--steps 8] [--repeats 2] [--threads 2]

Runs, in fresh processes (the pins only act before torch loads), a few training steps of the base CLIP
(``ovseg-tiny-vit``, batch 128 as ``clip.pretrain``) and of the demo proposer (``proposer-demo``, batch 16 of
128-px images as ``proposer``, mask loss included), alternating portable and native so that both see the same
machine load, and prints seconds per step for each, the portable/native ratio and the weight digests (portable
numerics must give one digest per model in every repeat). Native runs fp32 as well, to time the pins alone
(``precision: auto`` would pick bf16 on a CPU with AVX512-BF16).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("base_clip", "proposer")


def worker(model: str, mode: str, steps: int, threads: int) -> dict:
    """In this process: pin ``mode``, train ``model`` for ``steps`` steps; seconds per step (after one warm-up
    step) and the MD5 of the weights."""
    sys.path.insert(0, str(ROOT))
    from core.numerics import Numerics, pin_environment

    pin_environment(Numerics(mode, threads=threads))  # type: ignore[arg-type]
    import torch

    from core.device import set_threads

    set_threads(threads)  # native: the same thread count, so the ratio is the pins' alone
    torch.manual_seed(0)
    if model == "base_clip":
        from model.clip import build_clip

        net = build_clip("ovseg-tiny-vit", device="cpu").model
        side, batch = net.visual.image_size[0], 128
        tokens = torch.randint(1, 400, (batch, net.context_length))

        def loss_of(images: torch.Tensor) -> torch.Tensor:
            return (net.encode_image(images) @ net.encode_text(tokens).T).logsumexp(1).mean()
    else:
        from model.proposer.config import load_proposer_config
        from model.proposer.network import MaskProposer

        net = MaskProposer(load_proposer_config("proposer-demo"))
        side, batch = 128, 16
        text = torch.randn(31, net.config.text_dim)

        def loss_of(images: torch.Tensor) -> torch.Tensor:
            out = net(images, text)
            return out["pred_logits"].softmax(-1).var() + out["pred_masks"].sigmoid().mean()

    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        loss = loss_of(torch.rand(batch, 3, side, side))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = (time.perf_counter() - start) / steps
    digest = hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
    return {"seconds_per_step": seconds, "digest": digest}


def measure(model: str, mode: str, steps: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--worker", model, mode, "--steps", str(steps), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--steps", type=int, default=8)
    cli.add_argument("--repeats", type=int, default=2)
    cli.add_argument("--threads", type=int, default=2)
    cli.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = cli.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.threads)))
        return 0
    for model in MODELS:
        runs: dict[str, list[dict]] = {"portable": [], "native": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(measure(model, mode, args.steps, args.threads))
        median = {mode: statistics.median(r["seconds_per_step"] for r in rs) for mode, rs in runs.items()}
        digests = {mode: sorted({r["digest"][:10] for r in rs}) for mode, rs in runs.items()}
        print(
            f"{model}: portable {median['portable']:.3f} s/step, native {median['native']:.3f} s/step, "
            f"ratio {median['portable'] / median['native']:.2f} (median of {args.repeats}, {args.steps} steps, "
            f"{args.threads} threads); digests portable {digests['portable']}, native {digests['native']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
