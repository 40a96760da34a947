import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings

from tests.xero_integration.factories import XeroAuthorisationFactory
from xero_integration import crypto
from xero_integration.models import XeroAuthorisation

pytestmark = pytest.mark.django_db


def _raw_tokens(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM xero_integration_xeroauthorisation "
            "WHERE id = %s",
            [pk],
        )
        return cursor.fetchone()


def test_tokens_are_unreadable_in_the_database():
    auth = XeroAuthorisationFactory(access_token="eyJ-secret-access", refresh_token="rt-secret")
    raw_access, raw_refresh = _raw_tokens(auth.pk)
    assert "secret" not in raw_access and "secret" not in raw_refresh
    assert raw_access.startswith("gAAAAA")  # Fernet ciphertext
    loaded = XeroAuthorisation.objects.get(pk=auth.pk)
    assert (loaded.access_token, loaded.refresh_token) == ("eyJ-secret-access", "rt-secret")


def test_repr_never_shows_a_token():
    auth = XeroAuthorisationFactory(access_token="eyJ-secret-access")
    assert "secret" not in repr(auth) and "secret" not in str(auth)


def test_an_older_key_still_decrypts_after_rotation(settings):
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[old_key]):
        auth = XeroAuthorisationFactory(refresh_token="rt-rotate-me")
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[new_key, old_key]):
        assert XeroAuthorisation.objects.get(pk=auth.pk).refresh_token == "rt-rotate-me"
        rotated = crypto.token_rotate(_raw_tokens(auth.pk)[1])
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[new_key]):
        assert crypto.token_decrypt(rotated) == "rt-rotate-me"


def test_a_removed_key_gives_a_clear_error():
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        auth = XeroAuthorisationFactory()
    with (
        override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(ImproperlyConfigured, match="cannot be decrypted"),
    ):
        XeroAuthorisation.objects.get(pk=auth.pk)


def test_missing_keys_name_the_setting():
    with (
        override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[]),
        pytest.raises(ImproperlyConfigured, match="XERO_TOKEN_ENCRYPTION_KEYS is not set"),
    ):
        crypto.token_encrypt("x")


def test_rotate_command_re_encrypts_with_the_newest_key(capsys):
    from django.core.management import call_command

    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[old_key]):
        auth = XeroAuthorisationFactory(refresh_token="rt-rotate-all")
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("xero_rotate_token_key")
    assert "Re-encrypted the tokens of 1 Xero authorisation(s)." in capsys.readouterr().out
    with override_settings(XERO_TOKEN_ENCRYPTION_KEYS=[new_key]):
        assert XeroAuthorisation.objects.get(pk=auth.pk).refresh_token == "rt-rotate-all"
