from model.proposer import build_proposer, load_proposer_config
from pipeline.training.optim import weight_decay_groups
from pipeline.training.proposer import PROPOSER_NO_DECAY


def test_parameter_groups_exclude_norms_biases_and_queries() -> None:
    model = build_proposer(load_proposer_config("proposer-tiny"))
    decay, no_decay = weight_decay_groups(model, 0.05, PROPOSER_NO_DECAY)
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decayed}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "backbone.stem.0.weight" in names
    assert not any("query" in n or "norm" in n or n.endswith(".bias") or "no_object" in n for n in names)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out() -> None:
    model = build_proposer(load_proposer_config("proposer-tiny"))
    model.backbone.requires_grad_(False)
    decay, no_decay = weight_decay_groups(model, 0.1)
    kept = {id(p) for p in decay["params"] + no_decay["params"]}
    assert kept == {id(p) for p in model.parameters() if p.requires_grad}
