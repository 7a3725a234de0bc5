"""Typed reads from one TOML table of the operator's config, each failure a ConfigError naming file and key."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from polyroute.domain.money import MoneyFormatError

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "a table",
}

_FORMATS = {"base_url": "an http:// or https:// URL", "id": "author/slug, e.g. acme/my-model"}


class ConfigError(ValueError):
    """The config file is unusable; the message names the file, the key path and the reason."""

    def __init__(self, file: Path, key_path: str, reason: str) -> None:
        where = f"{file}: {key_path}" if key_path else str(file)
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.key_path = key_path
        self.reason = reason


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class Fields:
    """One TOML table at `path` (e.g. `models[2].endpoints[0]`). Rejects keys outside `allowed`.

    Error messages carry key names and types, and values only for prices, ids and fixed choices
    (`type`, `data_collection`): header values, URLs and other strings may hold secrets.
    """

    def __init__(self, file: Path, path: str, table: object, allowed: Collection[str]) -> None:
        self.file = file
        self.path = path
        if not isinstance(table, dict):
            raise ConfigError(file, path, f"expected a table, got {_type_name(table)}")
        self.table: Mapping[str, Any] = table
        for key in table:
            if key not in allowed:
                raise self.error(key, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.key_path(key), reason)

    def has(self, key: str) -> bool:
        return key in self.table

    def _typed(self, key: str, kind: type, required: bool) -> Any:
        if key not in self.table:
            if required:
                raise self.error(key, "missing required key")
            return None
        value = self.table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"expected {_TYPE_NAMES[kind]}, got {_type_name(value)}")
        return value

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        choices: Collection[str] | None = None,
    ) -> str | None:
        value: str | None = self._typed(key, str, required)
        if value is None:
            return None
        if choices is not None and value not in choices:
            raise self.error(key, f"expected one of {', '.join(sorted(choices))}, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            # No value in the message: a URL may carry credentials (https://user:password@host).
            raise self.error(key, f"not a valid {key}; expected {_FORMATS.get(key, 'see docs/configuration.md')}")
        if not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def required_string(
        self, key: str, *, pattern: re.Pattern[str] | None = None, choices: Collection[str] | None = None
    ) -> str:
        value = self.string(key, required=True, pattern=pattern, choices=choices)
        if value is None:  # unreachable: string(required=True) raises first; keeps the type exact
            raise self.error(key, "missing required key")
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int = 1) -> int | None:
        value: int | None = self._typed(key, int, required)
        if value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def string_list(self, key: str, *, choices: Collection[str] | None = None) -> tuple[str, ...] | None:
        values: list[Any] | None = self._typed(key, list, False)
        if values is None:
            return None
        for i, item in enumerate(values):
            if not isinstance(item, str):
                raise ConfigError(self.file, f"{self.key_path(key)}[{i}]", f"expected a string, got {_type_name(item)}")
            if choices is not None and item not in choices:
                raise ConfigError(
                    self.file,
                    f"{self.key_path(key)}[{i}]",
                    f"expected one of {', '.join(sorted(choices))}, got {item!r}",
                )
        return tuple(values)

    def string_map(self, key: str) -> dict[str, str] | None:
        table: dict[str, Any] | None = self._typed(key, dict, False)
        if table is None:
            return None
        for name, value in table.items():
            if not isinstance(value, str):
                raise ConfigError(
                    self.file, f"{self.key_path(key)}.{name}", f"expected a string, got {_type_name(value)}"
                )
        return dict(table)

    def table_of(self, key: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._typed(key, dict, False)
        return value

    def tables(self, key: str) -> list[Any]:
        """An array of tables (`[[models]]`); the tables themselves are checked by their own Fields."""
        value: list[Any] | None = self._typed(key, list, False)
        return value or []

    def price(self, key: str, convert: Callable[[str], int]) -> int | None:
        """A USD amount written as a string ("0.50") or a number (0.5), converted exactly to pUSD."""
        if key not in self.table:
            return None
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(key, f"expected a price as a string or number, got {_type_name(value)}")
        # str(float) is the shortest text that round-trips, i.e. what the operator typed.
        text = value if isinstance(value, str) else str(value)
        try:
            return convert(text)
        except MoneyFormatError as exc:
            raise self.error(key, f"bad price: {exc}") from None

    def required_price(self, key: str, convert: Callable[[str], int]) -> int:
        value = self.price(key, convert)
        if value is None:
            raise self.error(key, "missing required key")
        return value
