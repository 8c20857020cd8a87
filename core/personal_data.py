"""What a user has stored, gathered into one archive ("your data").

Each app registers a section in its ``AppConfig.ready``: a function of the user that returns
the files it contributes (name inside its folder -> text) and a count for the audit event.
``core`` knows no app; the apps know only this registry. ``build_archive`` writes a zip with
a README and one folder per section.
"""

import datetime
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SectionData:
    files: dict[str, str]
    count: int


_SECTIONS: dict[str, tuple[str, Callable[[object], SectionData]]] = {}


def register(name: str, description: str, producer: Callable[[object], SectionData]) -> None:
    """Add a section (a folder of the archive); registering a name again replaces it."""
    _SECTIONS[name] = (description, producer)


def sections() -> list[str]:
    return sorted(_SECTIONS)


@dataclass(frozen=True)
class Archive:
    content: bytes
    counts: dict[str, int]
    created_at: datetime.datetime


def build_archive(user, *, now: datetime.datetime) -> Archive:
    """The zip of everything the registered sections hold for ``user``."""
    buffer = io.BytesIO()
    counts = {}
    readme = [
        f"Everything stored for the account {user.get_username()}, as of {now:%Y-%m-%d %H:%M} UTC.",
        "",
        "Folders:",
    ]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sections():
            description, producer = _SECTIONS[name]
            data = producer(user)
            counts[name] = data.count
            readme.append(f"- {name}/: {description} ({data.count})")
            for file_name, text in sorted(data.files.items()):
                archive.writestr(f"{name}/{file_name}", text)
        readme += [
            "",
            'Content whose key was destroyed (erased) reads "(erased)".',
            "",
        ]
        archive.writestr("README.txt", "\n".join(readme))
    return Archive(buffer.getvalue(), counts, now)
