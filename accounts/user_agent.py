"""A browser's user agent string in words a person recognises: "Chrome 131 on Linux"."""

from functools import lru_cache

from ua_parser import parse

UNKNOWN = "Unknown browser"


@lru_cache(maxsize=512)
def browser_and_system(user_agent: str) -> str:
    """The browser and its major version, and the operating system, of ``user_agent``; the
    rules come from the ua-parser package, so no lookup leaves the machine."""
    if not user_agent:
        return UNKNOWN
    parsed = parse(user_agent)
    browser = parsed.user_agent
    system = parsed.os
    words = UNKNOWN
    if browser is not None and browser.family != "Other":
        words = f"{browser.family} {browser.major}" if browser.major else browser.family
    if system is not None and system.family != "Other":
        words = f"{words} on {system.family}"
    return words
