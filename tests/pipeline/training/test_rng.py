import random

import numpy as np
import torch

from pipeline.training.rng import capture_rng_state, restore_rng_state


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
