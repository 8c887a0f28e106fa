import pytest
import torch

from model.proposer import build_proposer, load_proposer_config


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_proposer(load_proposer_config("proposer-tiny")).eval()


@pytest.fixture
def text16():
    return torch.nn.functional.normalize(torch.randn(5, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
