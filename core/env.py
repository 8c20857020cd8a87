"""Typed readers for configuration that comes from the environment.

Each helper returns the default when the variable is unset or empty, and raises
``ImproperlyConfigured`` naming the variable when a value is malformed, so a typo in a
deployment stops start-up instead of silently picking a different behaviour.
"""

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of true/false, yes/no, on/off, 1/0."
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}.")
    return number


def env_list(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[str]:
    """A comma-separated list; blanks around items are ignored, empty items are an error."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(
            f"{name}={value!r} has an empty item: separate values with single commas."
        )
    return items


def env_int_map(
    name: str, *, minimum: int = 0, environ: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Comma-separated ``label=number`` pairs (``Legal=3650,Interns=30``); empty when unset."""
    result = {}
    for item in env_list(name, [], environ=environ):
        label, separator, number = (part.strip() for part in item.rpartition("="))
        try:
            value = int(number)
        except ValueError:
            value = None
        if not separator or not label or value is None or value < minimum:
            raise ImproperlyConfigured(
                f"{name} contains {item!r}: write each item as name=number with a whole number "
                f"of at least {minimum}, e.g. {name}=Legal=3650,Interns=30."
            )
        if label in result:
            raise ImproperlyConfigured(f"{name} names {label!r} twice: keep one of them.")
        result[label] = value
    return result


def env_networks(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of CIDR networks (a bare address means a single host)."""
    networks = []
    for item in env_list(name, default, environ=environ):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} contains {item!r}, which is not a network in CIDR form "
                f"such as 10.0.0.0/8 or fd00::/8 ({exc})."
            ) from None
    return networks


def env_path(
    name: str, default: Path | None, *, base: Path, environ: Mapping[str, str] | None = None
) -> Path | None:
    """A filesystem path; relative values are taken from ``base`` (the project root)."""
    value = _raw(name, environ)
    if value is None:
        return default
    path = Path(value)
    return path if path.is_absolute() else base / path
