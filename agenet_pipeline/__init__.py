"""AgeNet: facial age estimation as a Dagster pipeline.

`defs` is imported on first use, so that the domain code, the served model and the `agenet` command start
without importing Dagster (`dagster job execute -m agenet_pipeline` still finds it).
"""

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from agenet_pipeline.pipeline.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
