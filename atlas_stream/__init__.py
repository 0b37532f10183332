"""Atlas Stream: metadata-driven ingestion on Faust (contracts, quality tiers, lake sinks)."""

from __future__ import annotations

from typing import Any

__all__ = ["score_frame"]
__version__ = "0.12.0"


def score_frame(*args: Any, **kwargs: Any) -> Any:
    """pandas: the DataFrame with ``_tier``, ``_score`` and ``_failures`` (atlas_stream.frames)."""
    from .frames import score_frame as score

    return score(*args, **kwargs)
