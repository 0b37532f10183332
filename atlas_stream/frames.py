"""pandas: score a DataFrame against a contract's dataset with the batch engine (same checks,
order, score and tier as the stream and ``atlas-stream batch``; docs/quality.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # pandas is the optional `pandas` extra
    import pandas as pd

__all__ = ["score_frame"]


def score_frame(df: "pd.DataFrame", group: str, dataset: str, *, metadata_dir: str | Path | None = None,
                ingest_time: datetime | None = None) -> "pd.DataFrame":
    """``df`` with three columns added: ``_tier`` (gold, silver, bronze or rejected), ``_score``
    (0..1) and ``_failures`` (the failed checks, in the documented order), for dataset
    ``dataset`` of the contract whose ``ocs_group_name`` is ``group`` (read from
    ``metadata_dir``, default ATLAS_METADATA_DIR). Rows are scored as their values would be if a
    source sent them as JSON: the contract's transformations apply, and a column outside the
    schema fails the ``schema`` check. ``df`` itself is not changed; the index is kept.
    ``ingest_time`` (default now, UTC) is what freshness is measured against.
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - the `pandas` extra
        raise ImportError("score_frame needs pandas: `pip install 'atlas-stream[pandas]'`") from exc
    import pyarrow as pa

    from .batch.arrow_quality import BatchScorer
    from .batch.arrow_values import Col, from_python, json_default, json_view
    from .contracts import contract_for_group
    from .settings import get_settings

    contract = contract_for_group(metadata_dir if metadata_dir is not None else get_settings().metadata_dir, group)
    found = [ds for ds in contract.datasets if ds.name == dataset]
    if not found:
        raise ConfigError(f"contract {group!r} has no dataset {dataset!r}; it has: "
                          + ", ".join(ds.name for ds in contract.datasets))
    ds = found[0]
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"score_frame expects a pandas DataFrame, got {type(df).__name__}")
    n = len(df)
    cols: dict[str, Any] = {}
    for name in df.columns:
        series = df[name]
        if series.dtype == object:  # mixed Python values (text, numbers, None): as JSON would carry them
            values = [None if _is_nan(v) else v for v in series.tolist()]
            cols[str(name)] = Col(from_python(values))
        else:  # numbers, booleans, datetimes, pandas strings: Arrow's conversion (NaN and NaT -> null)
            cols[str(name)] = Col(json_view(pa.array(series, from_pandas=True), json_default))
    scorer = BatchScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    scored = scorer.score(cols, n, ingest_time or datetime.now(timezone.utc))
    out = df.copy()
    out["_tier"] = scored.tier.to_pylist()
    out["_score"] = scored.score.to_numpy(zero_copy_only=False) if n else []
    out["_failures"] = scored.failures.to_pylist()
    return out


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value
