"""Gateway authentication: each group's policy from its contract, and the token check."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["GroupAuth", "Refusal", "check_token", "group_auth", "presented_token"]


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer that ends the handshake: ``status`` and a plain-text reason."""

    status: HTTPStatus
    message: str


@dataclass(frozen=True)
class GroupAuth:
    """How a group authenticates producers: a shared token, explicitly none, or ``problem``
    (a contract that says neither, which the gateway refuses rather than guess)."""

    token: bytes | None = field(default=None, repr=False)
    open: bool = False
    problem: str | None = None


def group_auth(group: str, source_config: Mapping[str, Any]) -> GroupAuth:
    """The policy of ``source_config``: ``auth_token`` (usually a ``${VAR}`` placeholder) wins;
    otherwise ``"auth": "none"`` must be written out for the group to be open."""
    if "auth_token" in source_config:
        token = source_config["auth_token"]
        if not isinstance(token, str) or not token:
            return GroupAuth(problem=f"group {group!r}: source_config.auth_token is empty or not a string "
                                     "(is the variable of its ${...} placeholder set?); the gateway refuses "
                                     "this group until it is fixed")
        return GroupAuth(token=token.encode())
    auth = source_config.get("auth")
    if isinstance(auth, str) and auth.strip().lower() == "none":
        return GroupAuth(open=True)
    return GroupAuth(problem=f"group {group!r} declares neither source_config.auth_token nor "
                             "\"auth\": \"none\"; the gateway refuses it until its contract says which")


def presented_token(authorization: str | None, query_token: str | None) -> str | None:
    """The producer's token: ``Authorization: Bearer <token>``, else the ``token`` query parameter."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return query_token or None


def check_token(group: str, auth: GroupAuth, presented: str | None) -> Refusal | None:
    """None when the producer may connect; else the refusal (401 missing, 403 wrong or unusable)."""
    if auth.problem is not None:
        return Refusal(HTTPStatus.FORBIDDEN, auth.problem)
    if auth.open:
        return None
    assert auth.token is not None
    if not presented:
        return Refusal(HTTPStatus.UNAUTHORIZED, f"group {group!r} needs a token: send "
                                                "'Authorization: Bearer <token>' or ?token=<token>")
    # compare_digest on bytes: the time taken does not depend on where the first difference is.
    if not hmac.compare_digest(presented.encode(), auth.token):
        return Refusal(HTTPStatus.FORBIDDEN, f"wrong token for group {group!r}")
    return None
