"""The one training loop of every trainer: optimizer steps, schedule, checkpoints, resume, loss log, progress.

A trainer (a *recipe*) builds its trained module, its parameters and optimizer, then a
:class:`TrainingLoop`, which builds the warm-up + cosine schedule and the
:class:`~pipeline.training.checkpoint.Checkpointer` and resumes the newest checkpoint of the
run (weights, optimizer, schedule, every RNG, the loss log and a loss scaler's state). The
recipe then prepares its data (after the resume, which restores the global RNGs that data
preparation may draw from) and calls :meth:`TrainingLoop.run` with its epoch: a generator
over one epoch's batches that yields each batch's loss terms. Between two yields the loop
zeroes the gradients, backpropagates ``terms["loss"]`` (through the loss scaler), sums the
gradients across processes, clips them, steps the optimizer and the schedule and logs the terms,
so a recipe's per-epoch draws (its ``np.random.default_rng`` and ``torch.Generator``, created
in the generator's body) are made in the order of a plain loop. The loop stops at
``total_steps`` (a step budget may end the last epoch early), checkpoints every epoch but
the last (``Checkpointer(epochs=...)``), and trains the module in train mode, leaving it in eval mode.

Under torchrun every process runs the same loop (:mod:`pipeline.training.distributed`): the
trained module is broadcast from rank 0 before the first step, gradients are summed before
clipping, only rank 0 shows progress and writes checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping

import torch

from core.progress import progress
from pipeline.training.checkpoint import Checkpointer, resume_run
from pipeline.training.distributed import broadcast_module, current, sum_terms, sync_gradients
from pipeline.training.loss_log import LossLog
from pipeline.training.schedule import warmup_cosine_schedule

LossTerms = Mapping[str, torch.Tensor]
#: A recipe's epoch: ``epoch`` → a generator yielding each batch's loss terms (``"loss"`` is backpropagated).
Epoch = Callable[[int], Iterator[LossTerms]]


class TrainingLoop:
    """One training run of ``model`` (the module trained, checkpointed and broadcast).

    ``params``: the parameters ``optimizer`` trains, whose gradients are summed across processes and
    clipped (by default all of ``model``'s, in their order).
    ``total_steps``: the schedule's span and the run's step budget; ``epochs``: how many epochs
    it spans (the last one stops at the budget). ``grad_clip > 0`` clips the global gradient
    norm after the gradients are summed (and unscaled). ``scaler``: a mixed-precision loss
    scaler (by default a disabled one, which leaves every number as it is). ``shared_terms``:
    each process yields its share of the batch's loss terms, summed across processes for
    the log (otherwise every process yields the whole batch's terms).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        params: Iterable[torch.nn.Parameter] | None = None,
        desc: str,
        checkpoint_dir: str | os.PathLike,
        run_key: str,
        epochs: int,
        total_steps: int,
        warmup_steps: int,
        min_lr_ratio: float = 0.0,
        grad_clip: float = 0.0,
        scaler: torch.amp.GradScaler | None = None,
        shared_terms: bool = False,
    ):
        self.model, self.optimizer = model, optimizer
        self.params = list(params if params is not None else model.parameters())
        self.desc, self.epochs, self.total_steps = desc, epochs, total_steps
        self.grad_clip, self.shared_terms = grad_clip, shared_terms
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cpu", enabled=False)
        broadcast_module(model)
        self.scheduler = warmup_cosine_schedule(optimizer, warmup_steps, total_steps, min_lr_ratio)
        self.log = LossLog()
        self.checkpointer = Checkpointer(checkpoint_dir, run_key=run_key, epochs=epochs)
        self.start_epoch, self.step, resumed = resume_run(
            self.checkpointer, self.log, desc=desc, model=model, optimizer=optimizer, scheduler=self.scheduler
        )
        if resumed is not None and resumed.extra.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(resumed.extra["scaler"])

    def run(self, epoch: Epoch, *, after_epoch: Callable[[int], None] | None = None) -> LossLog:
        """Train the remaining epochs, each from ``epoch(index)``; returns the loss log (resumed rows included).

        ``after_epoch(n)`` runs on the main process after epoch ``n`` (counted from 1) is checkpointed, with the
        module in eval mode and the global RNGs restored afterwards, so a measurement there (a validation
        gauge) leaves the training's numbers as they are."""
        bar = progress(
            range(self.total_steps - self.step),
            desc=self.desc,
            total=self.total_steps - self.step,
            enabled=None if current().is_main else False,
        )  # advanced by hand, once per step
        self.model.train()
        for index in range(self.start_epoch, self.epochs):
            batches = epoch(index)
            while self.step < self.total_steps and (terms := next(batches, None)) is not None:
                self._update(terms["loss"])
                self.step += 1
                logged = {name: value.detach() for name, value in terms.items()}
                self.log.append(
                    step=self.step,
                    epoch=index,
                    lr=self.scheduler.get_last_lr()[0],
                    **(sum_terms(logged) if self.shared_terms else logged),
                )
                bar.update(1)
                if self.step % 10 == 0:
                    bar.set_postfix(epoch=index, loss=f"{self.log.rows[-1]['loss']:.3f}")
            self.checkpointer.save(
                epoch=index + 1,
                step=self.step,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                extra={"log": self.log.state_dict(), "scaler": self.scaler.state_dict()},
            )
            if after_epoch is not None and current().is_main:
                self.model.eval()
                with torch.random.fork_rng(devices=[]):
                    after_epoch(index + 1)
                self.model.train()
        bar.close()
        self.model.eval()
        return self.log

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        sync_gradients(self.params)
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
