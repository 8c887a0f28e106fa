import argparse

import pytest
import torch

from core.device import add_device_arguments, pick_device, set_threads


def test_set_threads_sets_and_refuses_nonsense() -> None:
    set_threads(None)  # torch's default is kept
    set_threads(2)
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="evaluate.threads must be null or >= 1, got 0"):
        set_threads(0, "evaluate.threads")


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_arguments_default_to_auto_and_one_thread() -> None:
    cli = argparse.ArgumentParser()
    add_device_arguments(cli)
    args = cli.parse_args([])
    assert (args.device, args.threads) == ("auto", 1)
    args = cli.parse_args(["--device", "cpu", "--threads", "3"])
    assert (args.device, args.threads) == ("cpu", 3)
