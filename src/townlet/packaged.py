"""Files that ship inside the package: the Hydra config tree.

A leaf module (it imports nothing of ours), so every layer may ask where the configs are without
importing the package's top level, which offers ``load_policy`` and so reaches up to the networks.
"""

from pathlib import Path

#: The Hydra config tree ships inside the package, so a wheel installed anywhere finds its configs.
CONF_DIR = Path(__file__).resolve().parent / "conf"
