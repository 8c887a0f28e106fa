from dataclasses import dataclass

import pytest

from core.params import check_fractions, check_keys, config_from_params, load_params


@dataclass(frozen=True)
class Recipe:
    epochs: int = 1
    scale: tuple[float, float] = (0.5, 1.0)


def test_unknown_keys_are_refused_and_named() -> None:
    check_keys({"epochs": 2}, ["epochs", "lr"], "train")
    with pytest.raises(ValueError, match=r"^train: unknown keys \['epoch', 'lrr'\]; known: \['epochs', 'lr'\]$"):
        check_keys({"epoch": 2, "lrr": 1, "lr": 1}, ["epochs", "lr"], "train")


def test_fractions_lie_in_the_unit_interval_unless_unset() -> None:
    check_fractions((("lam", 0.0), ("alpha", 1.0), ("lam_seen", None)))
    with pytest.raises(ValueError, match=r"^evaluate\.beta must lie in \[0, 1\], got 1\.5$"):
        check_fractions((("alpha", 0.5), ("beta", 1.5), ("lam", -1)), "evaluate.")


def test_config_from_params_is_strict_and_makes_lists_tuples() -> None:
    assert config_from_params(Recipe, {"scale": [0.1, 0.2]}, what="recipe", epochs=3) == Recipe(3, (0.1, 0.2))
    with pytest.raises(ValueError, match=r"recipe: unknown keys \['epoch'\]"):
        config_from_params(Recipe, {"epoch": 3}, what="recipe")


def test_load_params_names_the_file_and_section(tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("evaluate:\n  lam: 0.7\n")
    assert load_params("evaluate", path) == {"lam": 0.7}
    with pytest.raises(KeyError, match="no 'mine' section"):
        load_params("mine", path)
    with pytest.raises(FileNotFoundError, match="missing.yaml: params file not found"):
        load_params("mine", tmp_path / "missing.yaml")
