"""Where the shipped Hydra config tree is; a leaf, so any layer may ask without importing ``townlet``."""

from pathlib import Path

#: The Hydra config tree ships inside the package, so a wheel installed anywhere finds its configs.
CONF_DIR = Path(__file__).resolve().parent / "conf"
