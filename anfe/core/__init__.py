"""Shared infrastructure: the dataset layout, the store, errors, hashing, configuration."""
