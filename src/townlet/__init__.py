"""Townlet Train: a Hydra-configured experiment runner for Townlet agent policies.

Importing the package never imports torch: the world, services, DTOs and CLI stay light.
"""

__version__ = "0.1.0"
