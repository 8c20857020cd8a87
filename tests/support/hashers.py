from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2 hasher with few iterations, for tests only."""

    algorithm = "pbkdf2_sha256_fast"
    iterations = 1000
