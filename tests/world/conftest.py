"""World test helpers: small towns built from the shipped scenarios."""

from __future__ import annotations

import pytest

from townlet.world import WorldConfig, load_world_config


def small(name: str, **overrides: object) -> WorldConfig:
    """A scenario shrunk to a few envs so a test runs in well under a second."""
    base: dict[str, object] = {"num_envs": 2}
    base.update(overrides)
    return load_world_config(name, base)


@pytest.fixture
def small_world() -> type:
    class _S:
        make = staticmethod(small)

    return _S
