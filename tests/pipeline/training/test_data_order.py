import random

import torch

from pipeline.training.data_order import epoch_batches


def test_epoch_batches_depend_only_on_seed_and_epoch():
    a = epoch_batches(10, 3, seed=5, epoch=2)
    torch.manual_seed(123)
    random.seed(4)
    assert epoch_batches(10, 3, seed=5, epoch=2) == a
    assert [len(b) for b in a] == [3, 3, 3]
    assert epoch_batches(10, 3, seed=5, epoch=3) != a and epoch_batches(10, 3, seed=6, epoch=2) != a
    full = epoch_batches(10, 3, seed=5, epoch=2, drop_last=False)
    assert sorted(i for b in full for i in b) == list(range(10)) and full[:3] == a
