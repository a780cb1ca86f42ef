"""Every committed recipe configuration parses with the model of the command it is for, so a
renamed or removed setting cannot leave a recipe that fails only when someone runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.compress.config import CompressConfig
from training.compress.tasks import TasksConfig
from training.kda.adapt import AdaptConfig
from training.kda.config import KDAConfig
from training.probe.config import ProbeConfig
from training.settings_files import Settings

RECIPES = sorted((Path(__file__).resolve().parents[2] / "training" / "recipes").glob("*.yaml"))
MODELS: dict[str, type[Settings]] = {  # by the recipe's name: what reads it
    "compress-": CompressConfig,
    "tasks-": TasksConfig,
    "kda-vi-adapt": AdaptConfig,
    "kda-": KDAConfig,
    "probe-": ProbeConfig,
}


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_every_recipe_parses(recipe: Path) -> None:
    model = next((m for prefix, m in MODELS.items() if recipe.name.startswith(prefix)), None)
    assert model is not None, f"{recipe.name}: no configuration model is known for it"
    model.from_file(recipe)
