"""Data-parallel training over processes started by torchrun (gloo on CPU, NCCL on CUDA).

Without torchrun (or with one process) there is no process group at all and every helper
below is the identity, so a single-process run takes exactly the code path, and gives
exactly the bytes, of a trainer that never heard of this module.

The contract, under P processes: every process computes the same global batch order
(:func:`pipeline.training.data_order.epoch_batches`) and takes its contiguous part
(:func:`shard_bounds`), B/P items of the params' batch B, so that the global batch is
the same whatever P. Each process backpropagates *its share of the global loss* (shares
that sum to the loss one process would compute on the whole batch: normalisers such as
the number of masks are summed across processes first, and a loss over the whole batch,
such as CLIP's contrastive loss, is computed on features gathered from every process
with :func:`gather_rows`, whose gradient reaches only the local rows); :func:`sync_gradients`
then sums the gradients, which are therefore those of one process on the whole batch
(up to the order of float sums). Random draws are made for the whole batch and sliced
(``part_of`` of :mod:`pipeline.training.augment`). Only rank 0 writes checkpoints
(:class:`pipeline.training.checkpoint.Checkpointer` does it itself) and outputs.

What a training loop needs (besides sharding its batch)::

    ranks = distributed.current()                  # rank, world size; .is_main
    broadcast_module(model)                        # once: every process starts from rank 0's weights
    ... loss.backward(); sync_gradients(params)    # every step, before clipping and optimizer.step()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist

from core.params import check_keys

BACKENDS = ("auto", "gloo", "nccl")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_BUCKET_ELEMENTS = 1 << 22  # gradients are summed in flat buckets of at most 4 M elements (16 MB in fp32)


@dataclass(frozen=True)
class DistributedConfig:
    """The ``distributed`` key of a trainer's params section.

    ``nproc_per_node``: processes on this machine (> 1: the stage relaunches itself under
    ``torchrun --standalone``; a multi-node run is started by torchrun itself).
    ``backend``: ``gloo`` (CPU), ``nccl`` (CUDA) or ``auto`` (nccl on CUDA, else gloo).
    """

    nproc_per_node: int = 1
    backend: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.nproc_per_node, int) or self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be a positive integer, got {self.nproc_per_node!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str) -> DistributedConfig:
        params = dict(params or {})
        check_keys(params, cls.__dataclass_fields__, where)
        try:
            return cls(**params)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    @classmethod
    def of_section(cls, section: Mapping[str, Any], name: str) -> DistributedConfig:
        """The ``distributed`` key of the params section ``name`` (``section``, as read)."""
        return cls.from_params(section.get("distributed"), f"params.yaml:{name}.distributed")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is a process group (more than one process)."""
        return self.world_size > 1

    def announce(self, line: str) -> None:
        """Print ``line`` on the main process, with the number of processes when there are several."""
        if self.is_main:
            print(line + (f", {self.world_size} processes" if self.active else ""))

    def device(self, device: torch.device) -> torch.device:
        """``device`` with this process's GPU (``cuda:LOCAL_RANK``) when it names CUDA without an index."""
        if device.type == "cuda" and device.index is None and self.active:
            return torch.device("cuda", self.local_rank)
        return device


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(f"backend nccl needs CUDA devices, the trainer runs on {device}")
    return backend


def current() -> Ranks:
    """The ranks of the running process group, or rank 0 of 1 without one."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def start(cfg: DistributedConfig, device: torch.device) -> Ranks:
    """Join the process group that torchrun's environment describes; without torchrun, or with a world
    of one, start none. Returns this process's :class:`Ranks`; :func:`stop` ends it."""
    if not launched_by_torchrun():
        return Ranks()
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size == 1:
        return Ranks()
    if dist.is_initialized():
        return current()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(f"torchrun environment incomplete: {missing} not set")
    ranks = Ranks(int(os.environ["RANK"]), world_size, int(os.environ["LOCAL_RANK"]))
    backend = resolve_backend(cfg.backend, device)
    if backend == "nccl":
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(backend=backend, init_method="env://", rank=ranks.rank, world_size=world_size)
    return ranks


def stop(wait: bool = True) -> None:
    """Wait for every process (unless ``wait`` is false: after an error), then leave the process group."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(cfg: DistributedConfig, device: torch.device) -> Iterator[Ranks]:
    """:func:`start` on entry, :func:`stop` on exit (without waiting for the others after an error)."""
    ranks = start(cfg, device)
    try:
        yield ranks
    except BaseException:
        stop(wait=False)
        raise
    stop()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def local_batch_size(batch_size: int, world_size: int) -> int:
    """B/P: the items of a global batch of ``batch_size`` that each of ``world_size`` processes takes."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by {world_size} processes "
            "(the global batch is split evenly across them)"
        )
    return batch_size // world_size


def shard_bounds(num_items: int, ranks: Ranks, *, even: bool = True) -> tuple[int, int]:
    """``(start, stop)``: the contiguous part of a batch of ``num_items`` that this process takes.

    ``even=False``: parts that may differ by one item (what is split is not a batch, e.g. the classes whose
    text embeddings ``text_prompts`` computes: every process takes its part and gathers the rest).
    """
    if not even:
        return num_items * ranks.rank // ranks.world_size, num_items * (ranks.rank + 1) // ranks.world_size
    share = local_batch_size(num_items, ranks.world_size)
    return ranks.rank * share, (ranks.rank + 1) * share


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all processes (a new tensor, no gradient); ``tensor`` itself without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def sum_terms(terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scalar loss terms summed over all processes in one collective (for the loss log)."""
    if not (dist.is_available() and dist.is_initialized()):
        return dict(terms)
    names = sorted(terms)
    total = sum_across(torch.stack([terms[k].detach().float().reshape(()) for k in names]))
    return {k: total[i] for i, k in enumerate(names)}


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` of every process concatenated in rank order (counts may differ); the local rows
    keep their gradient, the others are constants (open_clip's ``gather_features``). Without a group: ``x``."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    ranks = current()
    count = torch.tensor([x.shape[0]], device=x.device)
    gathered = [torch.empty_like(count) for _ in range(ranks.world_size)]
    dist.all_gather(gathered, count)
    counts = [int(c) for c in gathered]
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    parts = [torch.empty_like(padded) for _ in range(ranks.world_size)]
    dist.all_gather(parts, padded)
    rows = [part[:n] for part, n in zip(parts, counts)]
    rows[ranks.rank] = x
    return torch.cat(rows)


def sync_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Sum every gradient over all processes (in flat buckets); a no-op without a group.

    Every process must pass the same parameters in the same order.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    params = [p for p in parameters if p.requires_grad]
    # A parameter no process has a gradient for stays without one (the optimizer skips it, as with one
    # process); one that only some processes reached gets zeros on the others.
    anywhere = sum_across(
        torch.tensor(
            [p.grad is not None for p in params], dtype=torch.int32, device=params[0].device if params else None
        )
    )
    params = [p for p, n in zip(params, anywhere.tolist()) if n > 0]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for bucket in _buckets(params):
        grads = [cast(torch.Tensor, p.grad) for p in bucket]  # every one has a gradient now (set above)
        flat = torch.cat([grad.reshape(-1) for grad in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p, grad in zip(bucket, grads):
            grad.copy_(flat[offset : offset + p.numel()].view_as(grad))
            offset += p.numel()


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (what DistributedDataParallel does at start)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _buckets(params: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
    """Consecutive parameters of one dtype and device, at most ``_BUCKET_ELEMENTS`` per bucket (a larger
    parameter is a bucket of its own)."""
    buckets: list[list[torch.nn.Parameter]] = []
    size = 0
    for p in params:
        last = buckets[-1] if buckets else None
        if (
            last is None
            or size + p.numel() > _BUCKET_ELEMENTS
            or (last[0].dtype, last[0].device) != (p.dtype, p.device)
        ):
            buckets.append([p])
            size = p.numel()
        else:
            last.append(p)
            size += p.numel()
    return buckets
