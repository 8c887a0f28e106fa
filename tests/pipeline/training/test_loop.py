"""The training loop on a tiny regression recipe: steps, step budget, checkpoints, resume, clipping."""

from __future__ import annotations

import pytest
import torch

from pipeline.training.checkpoint import Checkpointer
from pipeline.training.data_order import epoch_batches, epoch_seed
from pipeline.training.loop import TrainingLoop
from tests.doubles import killed_after_epoch

X = torch.randn(24, 3, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(24, generator=torch.Generator().manual_seed(1))


def regression(tmp_path, *, epochs=4, total_steps=None, grad_clip=0.0, lr=0.1, seen=None, after_epoch=None):
    """A linear model fitted to (X, Y) in batches of 6, each step's batch perturbed by a per-epoch generator."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loop = TrainingLoop(
        model,
        optimizer,
        desc="t",
        checkpoint_dir=tmp_path,
        run_key="r",
        epochs=epochs,
        total_steps=total_steps or epochs * 4,
        warmup_steps=2,
        grad_clip=grad_clip,
    )

    def losses(epoch):
        noise = torch.Generator().manual_seed(epoch_seed(5, epoch))
        for batch in epoch_batches(len(X), 6, 0, epoch):
            x = X[batch] + 0.01 * torch.randn(len(batch), 3, generator=noise)
            if seen is not None:
                seen.append((epoch, model.training))
            loss = ((model(x)[:, 0] - Y[batch]) ** 2).mean()
            yield {"loss": loss, "mse": loss}

    return model, loop.run(losses, after_epoch=after_epoch(model) if after_epoch else None)


def test_the_loop_steps_logs_and_leaves_the_model_in_eval_mode(tmp_path) -> None:
    seen = []
    model, log = regression(tmp_path, seen=seen)
    assert [r["step"] for r in log.rows] == list(range(1, 17)) and log.columns == ["step", "epoch", "lr", "loss", "mse"]
    assert [r["epoch"] for r in log.rows] == [e for e in range(4) for _ in range(4)]
    assert log.rows[0]["lr"] == pytest.approx(0.1)  # the schedule stepped once: warm-up step 2 of 2
    assert log.epoch_means(3)["loss"] < log.epoch_means(0)["loss"] / 4
    assert all(training for _, training in seen) and not model.training
    assert [e for e, _ in Checkpointer(tmp_path).checkpoints()] == [3]  # the last epoch is not checkpointed


def test_a_step_budget_ends_the_last_epoch_early(tmp_path) -> None:
    seen = []
    _, log = regression(tmp_path, epochs=3, total_steps=10, seen=seen)
    assert [r["epoch"] for r in log.rows] == [0] * 4 + [1] * 4 + [2] * 2
    assert len(seen) == 10  # the batch after the budget is not even computed
    assert log.rows[-1]["lr"] == 0.0  # the cosine reaches its end at the budget


def test_a_run_killed_after_an_epoch_resumes_to_the_same_weights_and_log(tmp_path) -> None:
    whole, whole_log = regression(tmp_path / "whole")
    with killed_after_epoch(2):
        regression(tmp_path / "killed")
    resumed, resumed_log = regression(tmp_path / "killed")
    assert resumed_log.rows == whole_log.rows
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_gradients_are_clipped_to_the_global_norm(tmp_path, monkeypatch) -> None:
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording(params, max_norm):
        params = list(params)
        total = clip(params, max_norm)
        norms.append(torch.cat([p.grad.flatten() for p in params]).norm().item())
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    regression(tmp_path / "clipped", grad_clip=0.01)
    assert len(norms) == 16 and max(norms) <= 0.01 * (1 + 1e-5)
    regression(tmp_path / "plain")
    assert len(norms) == 16  # grad_clip 0: no clipping


def test_the_loop_clips_the_parameters_it_is_given_else_all_of_the_models(tmp_path) -> None:
    model = torch.nn.Linear(3, 1)
    settings = dict(desc="t", run_key="r", epochs=1, total_steps=1, warmup_steps=0)
    whole = TrainingLoop(model, torch.optim.SGD(model.parameters()), checkpoint_dir=tmp_path / "a", **settings)
    assert whole.params == list(model.parameters())
    bias = TrainingLoop(
        model, torch.optim.SGD([model.bias]), params=[model.bias], checkpoint_dir=tmp_path / "b", **settings
    )
    assert bias.params == [model.bias]


def test_an_after_epoch_measurement_sees_each_epoch_in_eval_mode_and_changes_nothing(tmp_path) -> None:
    plain, _ = regression(tmp_path / "plain")
    measured = []

    def hook(model):
        def measure(epoch):  # draws from the global RNG, as an evaluation might
            measured.append((epoch, model.training, float(torch.rand(1))))

        return measure

    watched, _ = regression(tmp_path / "watched", after_epoch=hook)
    assert [(epoch, training) for epoch, training, _ in measured] == [(1, False), (2, False), (3, False), (4, False)]
    assert torch.equal(plain.weight, watched.weight) and torch.equal(plain.bias, watched.bias)
