"""The one exception of backups and restores: a refusal worded for the operator."""


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says what to do instead."""
