"""The order of the training data: a pure function of (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed derived from ``(seed, epoch)`` alone."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, drop_last: bool = True) -> list[list[int]]:
    """The epoch's batches: a permutation of ``range(num_items)`` seeded by ``(seed, epoch)``, chunked.

    Independent of any global RNG, so the order survives a resume unchanged.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    order = torch.randperm(num_items, generator=generator).tolist()
    stop = num_items - num_items % batch_size if drop_last else num_items
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]
