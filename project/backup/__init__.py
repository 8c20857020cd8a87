"""Backups of the database and, in a separate archive, of the key files; and putting them back.

``manage.py backup`` writes two tar files (docs/backup.md):

- the database archive, ``chat-db-<UTC time>.tar``: a consistent copy of the database
  (``pg_dump -Fc``, which reads one snapshot; or SQLite's online backup API). It holds chat
  content only as Fernet tokens and no key, so on its own it reveals no conversation.
- the key archive, ``chat-keys-<UTC time>.tar``: the key files of ``VAR_DIR/keys`` (mode
  0600). Keys given in environment variables are not in it; the output says so.

Each carries ``manifest.json``: format version, kind, creation time, database vendor,
migration state, app version, non-secret ids of the keys in use, and the sha256 of every
member, so that ``manage.py restore`` can refuse a damaged or mismatched archive before it
changes anything.

``python -m project.backup restore-keys KEY_ARCHIVE`` puts the key files back without
Django, for a machine that has none yet (the settings cannot load without keys, so
``manage.py`` cannot start there).

The modules, from the bottom up:

- ``errors``: ``BackupError``, the refusal every part raises, worded for the operator.
- ``archive``: the tar format and its manifest; writing an archive, and reading one back
  against its checksums.
- ``keyfiles``: the keys in use, whether a key archive's keys fit a database archive, and
  putting key files back.
- ``database``: dumping the settings' database and restoring a dump into it (SQLite's
  backup API; ``pg_dump``/``pg_restore`` of the right version with a private passfile),
  and the database checks a restore makes first.
- ``flow``: ``backup()`` and ``restore()`` as the management commands run them, and their
  audit events.
- ``restore_keys`` (run by ``__main__``): the Django-free ``restore-keys`` command line.

``errors``, ``archive``, ``keyfiles`` and ``restore_keys`` import no Django; ``database``
and ``flow`` need configured settings.
"""
