"""The worker's claim on its table data dir (ATLAS_DATA_DIR/faust) for on-disk stores (rocksdb://).

RocksDB tables are only right for the app id whose changelog topics they mirror, and one
process at a time may open them. A data dir is marked with its app id when first used and
locked while a worker runs, so a second worker, or a worker of another app id, stops at start
with one line naming the setting to fix instead of crash-looping on RocksDB's lock or silently
serving another app's statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from .errors import SettingsError
from .locks import LockHeld, lock_file
from .settings import Settings

__all__ = ["claim_table_dir", "table_dir"]

_MARK = "atlas-app-id"
_LOCK = "atlas-worker.lock"


def table_dir(settings: Settings) -> Path:
    """Faust's datadir (``datadir`` in atlas_stream.app.faust_settings)."""
    return settings.data_dir / "faust"


def claim_table_dir(settings: Settings, store: str) -> IO[str] | None:
    """Mark and lock the table dir of an on-disk ``store`` (the app's, after the development
    profile); returns the open lock file (keep it open for the life of the process), or None for
    ``memory://``. Raises SettingsError."""
    if store.startswith("memory:"):
        return None
    folder = table_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    mark = folder / _MARK
    if mark.is_file():
        owner = mark.read_text().strip()
        if owner != settings.app_id:
            raise SettingsError(
                f"ATLAS_DATA_DIR={settings.data_dir} holds the table data of app id {owner!r}, not "
                f"ATLAS_APP_ID={settings.app_id!r}: use another ATLAS_DATA_DIR (or the same ATLAS_APP_ID)")
    try:
        lock = lock_file(folder / _LOCK)
    except LockHeld as held:
        raise SettingsError(
            f"ATLAS_DATA_DIR={settings.data_dir} is in use by another worker (pid {held.holder}): give each "
            "worker on this machine its own ATLAS_DATA_DIR") from None
    if not mark.is_file():
        mark.write_text(settings.app_id + "\n")
    return lock
