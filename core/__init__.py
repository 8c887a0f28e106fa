"""The core layer: helpers every other package may import. It imports nothing of the project."""
