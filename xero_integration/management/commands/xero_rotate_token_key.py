"""Re-encrypt every stored Xero token with the newest key in XERO_TOKEN_ENCRYPTION_KEYS.

Rotation: put the new key first in XERO_TOKEN_ENCRYPTION_KEYS (keep the old ones after it),
restart, run this command, then drop the old keys. Tokens are never printed."""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from xero_integration.crypto import token_rotate
from xero_integration.models import XeroAuthorisation


class Command(BaseCommand):
    help = "Re-encrypt stored Xero tokens with the newest encryption key."

    def handle(self, *args: Any, **options: Any) -> None:
        table = XeroAuthorisation._meta.db_table
        rotated = 0
        with transaction.atomic():
            for auth in XeroAuthorisation.objects.select_for_update().only("pk"):
                # Re-encrypt the raw ciphertext; the plain token never leaves this statement.
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT access_token, refresh_token FROM {table} WHERE id = %s",  # noqa: S608
                        [auth.pk],
                    )
                    access, refresh = cursor.fetchone()
                    cursor.execute(
                        f"UPDATE {table} SET access_token = %s, refresh_token = %s WHERE id = %s",  # noqa: S608
                        [token_rotate(access), token_rotate(refresh), auth.pk],
                    )
                rotated += 1
        self.stdout.write(f"Re-encrypted the tokens of {rotated} Xero authorisation(s).")
