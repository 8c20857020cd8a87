"""Which field names could carry a secret or someone's words.

One rule for the audit log (``audit.log.record`` refuses such detail keys) and for JSON log
lines (``core.logging.RedactSecretsFilter`` redacts such extra fields).
"""

import re

# A key made of any of these words could carry a secret or someone's words.
FORBIDDEN_DETAIL_WORDS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "code",
        "codes",
        "otp",
        "key",
        "keys",
        "content",
        "text",
        "message",
        "prompt",
    }
)
# ...unless the key ends in one of these: then it describes such a thing, not its value
# (content_length, backup_codes_left, key_id, prompt_tokens).
METADATA_SUFFIXES = frozenset(
    {"count", "left", "length", "id", "ids", "fingerprint", "sequence", "tokens", "ms"}
)


def could_carry_secret(key: str) -> bool:
    """Whether a field named ``key`` could hold a secret or content (``api_token``,
    ``prompt``), rather than describe one (``prompt_tokens``, ``content_length``)."""
    words = [word for word in re.split(r"[^a-z]+", key.lower()) if word]
    return bool(set(words) & FORBIDDEN_DETAIL_WORDS) and words[-1] not in METADATA_SUFFIXES
