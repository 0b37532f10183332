"""Sinks: the lake (Parquet) and Elasticsearch. Pure modules: no app, agents or tables."""
