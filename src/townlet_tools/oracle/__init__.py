"""The plain-Python reference town: the vectorised town's rules one agent at a time."""

from townlet_tools.oracle.town import OracleTown

__all__ = ["OracleTown"]
