"""``${VAR}`` and ``${VAR:-default}`` placeholders in contract strings, filled from an environment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Filled", "Filling", "fill_placeholders"]

#: ``$${`` (an escaped ``${``), a whole placeholder, or a ``${`` that is never closed.
_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)

#: Location of a value in the document: keys and list indexes from the root.
Loc = tuple[Any, ...]


class Filled(str):
    """A string whose placeholders were filled in. It is an ordinary ``str`` everywhere except
    its repr, which shows the template as written in the contract: a secret read from the
    environment cannot leak through a repr, a ``%r`` log line or an error message built with
    ``!r``."""

    template: str

    def __new__(cls, value: str, template: str) -> Filled:
        obj = super().__new__(cls, value)
        obj.template = template
        return obj

    def __repr__(self) -> str:
        return repr(self.template)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Filled, (str(self), self.template))


@dataclass
class Filling:
    """Outcome of :func:`fill_placeholders`. ``problems`` are (location, message) pairs;
    ``secrets`` maps each value taken from the environment to its placeholder, so that callers
    can scrub those values from any text they print."""

    value: Any
    problems: list[tuple[Loc, str]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)


def fill_placeholders(value: Any, env: Mapping[str, str]) -> Filling:
    """Fill placeholders in every string value (not in object keys) of a JSON document.

    ``${VAR}`` takes VAR from ``env``; ``${VAR:-default}`` uses ``default`` when VAR is unset or
    empty (as in the shell); ``$${`` is a literal ``${``. Values are inserted once, never
    re-scanned. An unset VAR without a default, or a malformed placeholder, is a problem at the
    string's location; messages name the placeholder, never a value.
    """
    out = Filling(None)
    out.value = _fill(value, (), env, out)
    return out


def _fill(value: Any, loc: Loc, env: Mapping[str, str], out: Filling) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, (*loc, k), env, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, (*loc, i), env, out) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _fill_string(value, loc, env, out)
    return value


def _fill_string(text: str, loc: Loc, env: Mapping[str, str], out: Filling) -> str:
    pieces: list[str] = []
    filled = False
    pos = 0
    for m in _TOKEN.finditer(text):
        pieces.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "$${":
            pieces.append("${")
            continue
        body = m.group("body")
        if body is None:
            out.problems.append((loc, "unterminated placeholder: '${' has no closing '}' "
                                      "(write $${ for a literal ${)"))
            continue
        parsed = _BODY.match(body)
        if parsed is None:
            out.problems.append((loc, f"malformed placeholder {token!r}: expected ${{NAME}} or "
                                      "${NAME:-default} (write $${ for a literal ${)"))
            continue
        name, default = parsed.group("name"), parsed.group("default")
        current = env.get(name)
        filled = True
        if current is not None and (current != "" or default is None):
            pieces.append(current)
            if current:
                out.secrets[current] = f"${{{name}}}"
        elif default is not None:
            pieces.append(default)
        else:
            out.problems.append((loc, f"environment variable {name} is not set and ${{{name}}} "
                                      f"has no default (set {name}, or write ${{{name}:-default}})"))
    pieces.append(text[pos:])
    result = "".join(pieces)
    return Filled(result, text) if filled else result
