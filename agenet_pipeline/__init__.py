"""AgeNet: facial age estimation as a Dagster pipeline."""

from agenet_pipeline.definitions import defs

__all__ = ["defs"]
