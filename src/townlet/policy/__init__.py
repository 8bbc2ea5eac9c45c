"""Behaviour policies, the network, replay data and training."""
