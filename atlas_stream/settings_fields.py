"""How one ATLAS_* setting is declared: the :class:`Setting` record and the parsers of its text.

A parser turns the variable's text into a typed value or raises :class:`SettingsError` naming the
variable and what it accepts; its ``accepts`` is what the README's settings table says.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from .errors import SettingsError

__all__ = [
    "DECLARED", "OPTIONAL", "PEM", "TEXT", "URL", "Choice", "Flag", "Folder", "LakeUri", "LogLevel", "Raw",
    "Number", "Parser", "Required", "Seconds", "Setting", "Text", "Whole", "as_text", "setting",
]


# Parsers: text of an environment variable -> typed value, or a SettingsError naming the variable.
# ``accepts`` is what the README's table says the variable takes.

class Parser(Protocol):
    """Turns a variable's text into its value; raises SettingsError naming the variable."""

    @property
    def accepts(self) -> str:
        """What the variable takes, as the README's table says it."""
        ...

    def __call__(self, name: str, raw: str) -> Any: ...


@dataclass(frozen=True)
class Text:
    """Text; ``strip`` drops surrounding blanks, and an empty value means ``empty``."""

    strip: bool = False
    empty: Any = ""
    accepts: str = "text"

    def __call__(self, name: str, raw: str) -> Any:
        value = raw.strip() if self.strip else raw
        return value if value else self.empty


@dataclass(frozen=True)
class Required:
    """Text that must not be empty (``example`` is named in the error)."""

    example: str
    accepts: str = "text, not empty"

    def __call__(self, name: str, raw: str) -> str:
        value = raw.strip()
        if not value:
            raise SettingsError(f"{name} is empty: set it to e.g. {self.example}")
        return value


@dataclass(frozen=True)
class Number:
    """A whole number of at least ``minimum``, or (``seconds``) a positive number of seconds."""

    minimum: int = 0
    seconds: bool = False

    @property
    def accepts(self) -> str:
        return "seconds > 0" if self.seconds else f"whole number >= {self.minimum}"

    def __call__(self, name: str, raw: str) -> float:
        try:
            value = float(raw) if self.seconds else int(raw)
        except ValueError:
            what = "a number of seconds" if self.seconds else "a whole number"
            raise SettingsError(f"{name}={raw!r}: expected {what}") from None
        if self.seconds and value <= 0:
            raise SettingsError(f"{name}={raw!r}: must be positive")
        if value < self.minimum:
            raise SettingsError(f"{name}={raw!r}: must be at least {self.minimum}")
        return value


def Whole(minimum: int) -> Number:  # noqa: N802  # reads as a type in the declarations
    return Number(minimum)


def Seconds() -> Number:  # noqa: N802
    return Number(seconds=True)


@dataclass(frozen=True)
class Flag:
    accepts: str = "1/0, true/false, yes/no, on/off"

    def __call__(self, name: str, raw: str) -> bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (case-insensitive); ``optional``: empty means None."""

    values: tuple[str, ...]
    optional: bool = False

    @property
    def accepts(self) -> str:
        return ", ".join(f"`{v}`" for v in self.values)

    def __call__(self, name: str, raw: str) -> str | None:
        value = raw.strip().lower()
        if self.optional and not value:
            return None
        if value not in self.values:
            expected = (" or ".join(self.values) if len(self.values) == 2
                        else f"one of {', '.join(self.values)}")
            raise SettingsError(f"{name}={value!r}: expected {expected}")
        return value


@dataclass(frozen=True)
class LogLevel:
    accepts: str = "`debug`, `info`, `warn`, `error`, `crit` (or `warning`, `critical`)"

    def __call__(self, name: str, raw: str) -> str:
        # Faust's -l takes crit/error/warn/info/debug; accept the logging module's spellings too.
        value = {"warning": "warn", "critical": "crit"}.get(raw.strip().lower(), raw.strip().lower())
        if value not in ("crit", "error", "warn", "info", "debug"):
            raise SettingsError(f"{name}={raw!r}: expected debug, info, warn, error or crit")
        return value


@dataclass(frozen=True)
class Folder:
    accepts: str = "path"

    def __call__(self, name: str, raw: str) -> Path:
        return Path(raw).expanduser()


@dataclass(frozen=True)
class LakeUri:
    accepts: str = "URI or path"

    def __call__(self, name: str, raw: str) -> str:
        # A bare path means a local folder; keep URIs (file://, s3://, hdfs://, webhdfs://) as given.
        if "://" in raw:
            return raw
        return Path(raw).expanduser().resolve().as_uri()


@dataclass(frozen=True)
class Raw:
    """Text passed on as given: the variable is checked together with others (KafkaSecurity.build)."""

    accepts: str = "text"

    def __call__(self, name: str, raw: str) -> str:
        return raw


TEXT = Text()
OPTIONAL = Text(strip=True, empty=None)
URL = Text(strip=True, empty=None, accepts="URL")
PEM = Text(strip=True, empty=None, accepts="PEM file")


@dataclass(frozen=True)
class Setting:
    """One ATLAS_* environment variable: its name, how its text becomes a value, what it means.

    ``unset`` is the text an unset variable reads as (None: the field's default, written as text);
    ``shown`` replaces the README's default column when that text says too little. A ``secret``
    is never logged nor shown in a repr.
    """

    env: str
    help: str
    parse: Parser = TEXT
    unset: str | None = None
    shown: str | None = None
    secret: bool = False

    def read(self, env: Mapping[str, str], default: Any) -> Any:
        raw = env.get(self.env)
        if raw is None:
            raw = self.unset if self.unset is not None else as_text(default)
        return self.parse(self.env, raw)

    def default_text(self, default: Any) -> str:
        """The README's default column."""
        if self.shown is not None:
            return self.shown
        text = self.unset if self.unset is not None else as_text(default)
        if not text:
            return "unset"
        if self.env.endswith("_BYTES") and isinstance(default, int) and default % 1_048_576 == 0:
            return f"`{text}` ({default // 1_048_576} MiB)"
        return f"`{text}`"


def as_text(default: Any) -> str:
    if default is None or default is MISSING:
        return ""
    if isinstance(default, bool):
        return "1" if default else "0"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


DECLARED = "atlas_setting"


def setting(env: str, default: Any, help: str, parse: Parser = TEXT, *, unset: str | None = None,
            shown: str | None = None, secret: bool = False, repr: bool = True) -> Any:
    """A :class:`Settings` field declared with its environment variable (see :class:`Setting`)."""
    declared = Setting(env=env, help=help, parse=parse, unset=unset, shown=shown, secret=secret)
    return field(default=default, repr=repr and not secret, metadata={DECLARED: declared})
