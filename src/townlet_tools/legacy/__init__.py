"""The importer of the original per-agent ``.npz`` + JSON captures into format v1."""

from townlet_tools.legacy.importer import import_legacy, import_legacy_groups

__all__ = ["import_legacy", "import_legacy_groups"]
