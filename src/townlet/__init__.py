"""Townlet Train: a Hydra-configured experiment runner for Townlet agent policies.

Importing the package never imports torch: the world, services, DTOs and CLI stay light.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The Hydra config tree ships inside the package, so a wheel installed anywhere finds its configs.
CONF_DIR = Path(__file__).resolve().parent / "conf"
