"""A few training steps of a ViT CLIP and the demo proposer, under the numerics named on the command line
(``portable`` or ``native``); prints the MD5 of the trained weights.

:mod:`tests.core.test_numerics` runs it in subprocesses whose environments imitate different machines.
"""

from __future__ import annotations

import hashlib
import sys

from core.numerics import Numerics, pin_environment

pin_environment(Numerics(sys.argv[1], threads=2))  # type: ignore[arg-type]  # checked by from_params' callers

import torch  # noqa: E402  # after the pins: the libraries read them when they load

from core.numerics import pin_torch  # noqa: E402
from model.clip import build_clip  # noqa: E402
from model.proposer.config import load_proposer_config  # noqa: E402
from model.proposer.network import MaskProposer  # noqa: E402


def main() -> None:
    pin_torch()
    torch.manual_seed(0)
    clip = build_clip("ovseg-tiny-vit", device="cpu").model  # patch convolution, LayerNorm, attention softmax
    proposer = MaskProposer(load_proposer_config("proposer-demo"))  # convolutions, GroupNorm, a transformer
    params = [*clip.parameters(), *proposer.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    side = clip.visual.image_size[0]
    for _ in range(3):
        images = torch.rand(8, 3, side, side)
        tokens = torch.randint(1, 400, (8, clip.context_length))
        image_features, text_features = clip.encode_image(images), clip.encode_text(tokens)
        outputs = proposer(images, text_features)
        loss = (image_features @ text_features.T).logsumexp(1).mean()
        loss = loss + outputs["pred_logits"].softmax(-1).var() + outputs["pred_masks"].pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    digest = hashlib.md5()
    for p in params:
        digest.update(p.detach().numpy().tobytes())
    print(digest.hexdigest())


if __name__ == "__main__":
    main()
