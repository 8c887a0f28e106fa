"""Nouns of captions: spaCy extraction and the Beam job that writes them."""
