"""Run directories and their artefacts: atomic writes, metrics, records, seeding, devices.

Torch-free: ``device`` and ``seeding`` import torch only when a CUDA device or torch seeding is asked for.
"""
