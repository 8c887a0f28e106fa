import pytest
import torch

from core.device import pick_device, set_threads


def test_set_threads_sets_and_refuses_nonsense() -> None:
    set_threads(None)  # torch's default is kept
    set_threads(2)
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="evaluate.threads must be null or >= 1, got 0"):
        set_threads(0, "evaluate.threads")


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
