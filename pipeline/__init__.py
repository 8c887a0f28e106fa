"""Data that moves, grouped by concern: beam, nouns, mining, training, evaluation, datasets, world, project."""
