"""Atlas Stream: metadata-driven ingestion on Faust (contracts, quality tiers, lake sinks)."""

__version__ = "0.1.0"
