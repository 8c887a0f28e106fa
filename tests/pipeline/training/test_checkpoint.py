import dataclasses
import os
import random
import stat

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.proposer import SetCriterion, build_proposer, load_proposer_config, semantic_targets
from pipeline.training.checkpoint import Checkpointer
from pipeline.training.data_order import epoch_batches
from pipeline.training.loss_log import LossLog
from pipeline.training.schedule import warmup_cosine_schedule


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


def test_a_checkpoint_is_an_ordinary_file_and_a_failed_save_keeps_the_last_one(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(tmp_path, run_key="a")
    path = ckpt.save(epoch=1, step=1, model=model)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not the temporary file's 0600

    def full_disk(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="no space"):
        ckpt.save(epoch=2, step=2, model=model)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert ckpt.resume(model=torch.nn.Linear(2, 2)).epoch == 1


def test_the_runs_last_epoch_is_not_checkpointed(tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = Checkpointer(tmp_path / "ckpt", epochs=3)
    written = [ckpt.save(epoch=epoch, step=epoch, model=model) for epoch in (1, 2, 3)]
    assert written == [tmp_path / "ckpt" / "epoch-0001.pt", tmp_path / "ckpt" / "epoch-0002.pt", None]
    assert [e for e, _ in ckpt.checkpoints()] == [2]
    assert ckpt.resume(model=model).epoch == 2  # killed before the output: the last epoch runs again


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
        ckpt.save(
            epoch=epoch + 1,
            step=step,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            extra={"log": log.state_dict()},
        )
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
