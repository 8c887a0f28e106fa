import pytest
import torch

from pipeline.training.loss_log import LossLog


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
