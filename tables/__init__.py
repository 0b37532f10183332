"""Faust table declarations (discovered by the app; nothing else lives here)."""
