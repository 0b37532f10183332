"""The file poller (``source_type: fs``): landing folders -> raw topics, exactly once.

``source`` reads and archives files, ``options`` checks the contract's file options,
``readers`` and ``csvfile`` turn bytes into rows, ``progress`` prints what ``poll`` reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...contract_schema import json_path
from ...model import Contract
from ...settings import Settings
from .options import FileOptions, landing_for

if TYPE_CHECKING:
    from ..interface import PolledSource
    from .progress import TerminalProgress
    from .source import FileSource, Progress

__all__ = ["FileSource", "TerminalProgress", "build_file_sources", "sources_for"]


def __getattr__(name: str) -> Any:
    # The poller's classes (and aiokafka, which they publish with) are imported when first used:
    # the batch command reads files through .options and .readers alone.
    if name == "FileSource":
        from .source import FileSource

        return FileSource
    if name == "TerminalProgress":
        from .progress import TerminalProgress

        return TerminalProgress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_file_sources(contract: Contract, settings: Settings, dataset: str | None = None, once: bool = False,
                       progress: Progress | None = None) -> list[tuple[PolledSource, float]]:
    """(source, poll interval) for every dataset of an ``fs`` contract (or only ``dataset``)."""
    from ..interface import select_datasets
    from .source import FileSource

    out: list[tuple[PolledSource, float]] = []
    for ds in select_datasets(contract, dataset):
        index = contract.datasets.index(ds)
        options = FileOptions.from_contract(contract, ds, settings)
        landing = landing_for(ds.path, options.archive_dir, file=contract.file,
                              path_at=json_path(("dataset_config", index, "source", "path")),
                              archive_at=options.archive_at)
        out.append((FileSource(contract, ds, settings, options, landing, progress, once), options.poll_interval))
    return out


def sources_for(contract: Contract, settings: Settings, dataset: str | None,
                once: bool) -> list[tuple[PolledSource, float]]:
    """The registry's entry (:mod:`..kinds`): the ``poll`` command shows each file's progress."""
    from .progress import TerminalProgress

    return build_file_sources(contract, settings, dataset, once, TerminalProgress())
