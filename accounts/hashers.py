from django.contrib.auth.hashers import PBKDF2PasswordHasher


class BackupCodeHasher(PBKDF2PasswordHasher):
    """PBKDF2 for backup codes, with fewer iterations than for passwords.

    Slow hashing makes guessing weak passwords expensive; a backup code is random with about
    49 bits, so it needs no such help, and verifying a code checks up to ten hashes.
    """

    algorithm = "backup_code_pbkdf2"
    iterations = 60_000
