"""A named set of classes with their text embeddings, stored alongside a trained proposer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Vocabulary:
    """Class ``names`` and their text ``embeddings`` ``[len(names), D]``, row i for name i."""

    names: tuple[str, ...]
    embeddings: torch.Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if not all(isinstance(n, str) and n for n in self.names):
            raise ValueError("vocabulary names must be non-empty strings")
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.names):
            raise ValueError(
                f"vocabulary embeddings must be [{len(self.names)}, D] (one row per name), "
                f"got {list(self.embeddings.shape)}"
            )
        if not self.embeddings.is_floating_point():
            raise ValueError(f"vocabulary embeddings must be floating point, got {self.embeddings.dtype}")

    def to(self, device: torch.device | str) -> Vocabulary:
        return Vocabulary(self.names, self.embeddings.to(device))
