"""Secrets out of text: passwords in URLs, and known secret values, before anything is logged."""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["redact", "redact_url"]

#: ``scheme://user:password@host`` -> ``scheme://user:***@host`` (also inside longer text).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without URL passwords nor any of ``secrets`` (empty ones ignored)."""
    text = redact_url(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
