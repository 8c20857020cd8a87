"""Key-file changes that must show in the audit log: the file and its event change together."""

from pathlib import Path

from audit.log import record
from core.keys import key_id, replace_keys_and_record


def keep_only_newest(path: Path, current: list[str], kind: str) -> list[str]:
    """Rewrite ``path`` with its first key only and record ``keys.rotated`` (step
    ``drop_old``, key ids only), both or neither; returns the keys dropped."""
    dropped = current[1:]
    replace_keys_and_record(
        path,
        current[:1],
        current,
        lambda: record(
            "keys.rotated",
            kind=kind,
            step="drop_old",
            kept_key_id=key_id(kind, current[0]),
            dropped_key_ids=[key_id(kind, key) for key in dropped],
        ),
    )
    return dropped
