import dataclasses
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.proposer import SetCriterion, build_proposer, load_proposer_config, semantic_targets
from pipeline.training import (
    Checkpointer,
    LossLog,
    WarmupCosine,
    capture_rng_state,
    epoch_batches,
    progress,
    restore_rng_state,
    warmup_cosine_schedule,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_warmup_cosine_values():
    f = WarmupCosine(warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = warmup_cosine_schedule(optimizer, 2, 6)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1.0, 2.0, 2.0, 2 * 0.5 * (1 + math.cos(math.pi / 4)), 1.0, 2 * 0.5 * (1 + math.cos(3 * math.pi / 4))])
    with pytest.raises(ValueError):
        WarmupCosine(1, 0)


def test_epoch_batches_depend_only_on_seed_and_epoch():
    a = epoch_batches(10, 3, seed=5, epoch=2)
    torch.manual_seed(123)
    random.seed(4)
    assert epoch_batches(10, 3, seed=5, epoch=2) == a
    assert [len(b) for b in a] == [3, 3, 3]
    assert epoch_batches(10, 3, seed=5, epoch=3) != a and epoch_batches(10, 3, seed=6, epoch=2) != a
    full = epoch_batches(10, 3, seed=5, epoch=2, drop_last=False)
    assert sorted(i for b in full for i in b) == list(range(10)) and full[:3] == a


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's legacy state
    state = capture_rng_state()
    expected = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(2))
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(torch.load(path, weights_only=True))
    got = (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(2))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_checkpointer_keeps_last_complete_and_ignores_other_runs(tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(tmp_path / "ckpt", run_key="a", keep=2)
    assert ckpt.resume(model=model) is None
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(epoch)
        ckpt.save(epoch=epoch, step=10 * epoch, model=model, extra={"note": f"e{epoch}"})
    assert [e for e, _ in ckpt.checkpoints()] == [2, 3]
    # a save killed half-way leaves only a temporary file, which is never resumed
    (tmp_path / "ckpt" / ".epoch-0004.pt.tmp-dead").write_bytes(b"partial")
    fresh = torch.nn.Linear(2, 2)
    state = ckpt.resume(model=fresh)
    assert (state.epoch, state.step, state.extra) == (3, 30, {"note": "e3"})
    assert torch.all(fresh.weight == 3)
    # a damaged newest file falls back to the previous one
    (tmp_path / "ckpt" / "epoch-0003.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert ckpt.resume(model=fresh).epoch == 2
    # another run's checkpoints are not resumed, and its next save clears them
    (tmp_path / "ckpt" / "epoch-0003.pt").unlink()
    other = Checkpointer(tmp_path / "ckpt", run_key="b")
    with pytest.warns(UserWarning, match="another run"):
        assert other.resume(model=fresh) is None
    other.save(epoch=1, step=1, model=model)
    assert [p.name for p in sorted((tmp_path / "ckpt").iterdir())] == ["epoch-0001.pt"]
    other.clear()
    assert not (tmp_path / "ckpt").exists() and other.resume(model=fresh) is None


def test_loss_log_writes_csv_and_tsv(tmp_path):
    log = LossLog()
    log.append(step=1, epoch=0, lr=0.001, loss=torch.tensor(2.5), loss_ce=1.0)
    log.append(step=2, epoch=0, lr=0.002, loss=1.5, loss_ce=0.5)
    log.append(step=3, epoch=1, lr=0.003, loss=1.0, loss_ce=0.25)
    assert log.columns == ["step", "epoch", "lr", "loss", "loss_ce"]
    assert log.write(tmp_path / "loss.csv").read_text().splitlines() == [
        "step,epoch,lr,loss,loss_ce",
        "1,0,0.001,2.5,1",
        "2,0,0.002,1.5,0.5",
        "3,1,0.003,1,0.25",
    ]
    assert log.write(tmp_path / "loss.tsv").read_text().splitlines()[0] == "step\tepoch\tlr\tloss\tloss_ce"
    assert log.epoch_means(0) == pytest.approx({"lr": 0.0015, "loss": 2.0, "loss_ce": 0.75})
    with pytest.raises(ValueError, match="columns"):
        log.append(step=4, epoch=1, lr=0.0, loss=1.0)
    copy = LossLog()
    copy.load_state_dict(log.state_dict())
    assert copy.rows == log.rows


def test_progress_is_silent_when_disabled(capsys):
    assert list(progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- resume
def _dataset():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (6, 4, 4), generator=gen)
    labels = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)  # 32-px blocky scenes
    palette = torch.rand(3, 3, generator=gen)
    images = palette[labels].permute(0, 3, 1, 2).contiguous()
    text = F.normalize(torch.randn(3, 16, generator=gen), dim=-1)
    return images, [semantic_targets(label) for label in labels], text


def _train(checkpoint_dir, stop_after: int, total_epochs: int = 4):
    """Train the tiny proposer (with dropout and random augmentation) and checkpoint every epoch."""
    config = load_proposer_config("proposer-tiny")
    config = dataclasses.replace(config, decoder=dataclasses.replace(config.decoder, dropout=0.2))
    images, targets, text = _dataset()
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    model = build_proposer(config)
    criterion = SetCriterion(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps_per_epoch = 3
    scheduler = warmup_cosine_schedule(optimizer, 2, total_epochs * steps_per_epoch)
    log = LossLog()
    ckpt = Checkpointer(checkpoint_dir, run_key="test")
    start, step = 0, 0
    state = ckpt.resume(model=model, optimizer=optimizer, scheduler=scheduler)
    if state is not None:
        start, step = state.epoch, state.step
        log.load_state_dict(state.extra["log"])
    for epoch in range(start, min(stop_after, total_epochs)):
        model.train()
        for batch in epoch_batches(len(images), 2, seed=7, epoch=epoch):
            x = images[batch] + 0.05 * torch.from_numpy(np.random.standard_normal((2, 3, 32, 32))).float()
            if random.random() < 0.5:
                x = x.flip(-1)  # labels not flipped: augmentation noise is fine for this test
            terms = criterion(model(x, text), [targets[i] for i in batch])
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            scheduler.step()
            step += 1
            log.append(step=step, epoch=epoch, lr=scheduler.get_last_lr()[0], **terms)
        ckpt.save(epoch=epoch + 1, step=step, model=model, optimizer=optimizer, scheduler=scheduler,
                  extra={"log": log.state_dict()})
    return model, log


def test_resume_gives_bit_identical_weights(tmp_path):
    straight, straight_log = _train(tmp_path / "a", stop_after=4)
    _train(tmp_path / "b", stop_after=2)  # "killed" after two epochs
    resumed, resumed_log = _train(tmp_path / "b", stop_after=4)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed_log.rows == straight_log.rows and len(resumed_log.rows) == 12
    fresh, _ = _train(tmp_path / "c", stop_after=2)
    assert not torch.equal(fresh.state_dict()["class_head.no_object"], a["class_head.no_object"])
