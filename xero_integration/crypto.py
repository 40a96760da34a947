"""Encryption at rest for Xero tokens (Fernet, with MultiFernet for key rotation).

Keys come only from the environment (XERO_TOKEN_ENCRYPTION_KEYS, newest first), never from the
database. A token is never logged: EncryptedTextField values are plain str in memory, so callers
must keep them out of log lines and error messages (the client redacts them).
"""

from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "XERO_TOKEN_ENCRYPTION_KEYS is not set: generate a key with "
            "`python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`"
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "XERO_TOKEN_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def token_fernet() -> MultiFernet:
    return _fernet(tuple(settings.XERO_TOKEN_ENCRYPTION_KEYS))


def token_encrypt(value: str) -> str:
    return token_fernet().encrypt(value.encode()).decode()


def token_decrypt(value: str) -> str:
    try:
        return token_fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored Xero token cannot be decrypted with XERO_TOKEN_ENCRYPTION_KEYS: the key that "
            "encrypted it was removed. Restore it (as an older key) or re-authorise the connection."
        ) from exc


def token_rotate(value: str) -> str:
    """Re-encrypt with the newest key (MultiFernet.rotate)."""
    return token_fernet().rotate(value.encode()).decode()


class EncryptedTextField(models.TextField):
    """Stores Fernet ciphertext; Python code sees plain text."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return token_decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return token_encrypt(str(value))
