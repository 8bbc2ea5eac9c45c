"""The torch-free vectorised town."""
