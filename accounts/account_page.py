"""Sections that apps above accounts add to the account page, which cannot import them.

An app registers a function of the request that returns HTML (or "" for nothing) in its
AppConfig.ready; the account page shows each, in order of registration, below its own.
"""

from collections.abc import Callable

from django.utils.safestring import SafeString

_sections: list[Callable[[object], SafeString | str]] = []


def register_section(section: Callable[[object], SafeString | str]) -> None:
    if section not in _sections:
        _sections.append(section)


def sections(request) -> list[SafeString | str]:
    return [html for html in (section(request) for section in _sections) if html]
