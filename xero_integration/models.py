"""Connections to Xero.

Xero issues one token set per user grant (an "authorisation"), and that one token set reaches every
organisation (tenant) the user ticked on the consent page. So tokens live on XeroAuthorisation,
one row per grant, and each organisation is a XeroConnection pointing at it; entities link to a
connection, several entities may share one. The refresh takes a row lock on the authorisation.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from xero_integration.crypto import EncryptedTextField


class XeroAuthorisation(models.Model):
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    access_token_expires_at = models.DateTimeField()
    # Xero refresh tokens expire 60 days after they were issued (xero-api-notes.md §5).
    refresh_token_issued_at = models.DateTimeField()
    scopes = models.CharField(max_length=1000)
    auth_event_id = models.CharField(max_length=64, blank=True)
    xero_user_id = models.CharField(max_length=64, blank=True)
    # Bumped by every refresh, so a test (or an operator) can tell how many refreshes happened.
    generation = models.PositiveIntegerField(default=1)
    is_revoked = models.BooleanField(default=False)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_refresh_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"Xero authorisation #{self.pk}"

    def __repr__(self) -> str:
        # Never let a token reach a log line or a traceback through repr().
        return f"<XeroAuthorisation {self.pk} generation={self.generation}>"


class ConnectionStatus(models.TextChoices):
    CONNECTED = "connected", "Connected"
    NEEDS_REAUTH = "needs_reauth", "Needs re-authorisation"
    DISCONNECTED = "disconnected", "Disconnected"
    ERROR = "error", "Error"


class XeroConnection(models.Model):
    """One Xero organisation (tenant) and the authorisation that reaches it."""

    tenant_id = models.CharField(max_length=36, unique=True)
    tenant_name = models.CharField(max_length=255)
    xero_connection_id = models.CharField(max_length=36, blank=True)
    authorisation = models.ForeignKey(
        XeroAuthorisation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="connections",
    )
    status = models.CharField(
        max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.CONNECTED
    )
    status_detail = models.TextField(blank=True)
    base_currency = models.CharField(max_length=3, blank=True)
    short_code = models.CharField(max_length=20, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # From Xero's rate-limit headers on the latest tenant response.
    day_limit_remaining = models.IntegerField(null=True, blank=True)
    minute_limit_remaining = models.IntegerField(null=True, blank=True)
    app_minute_limit_remaining = models.IntegerField(null=True, blank=True)
    limits_seen_at = models.DateTimeField(null=True, blank=True)
    # Durable copy of a 429 pause (the limiter keeps the fast copy in Redis).
    paused_until = models.DateTimeField(null=True, blank=True)
    last_call_at = models.DateTimeField(null=True, blank=True)
    accounts_pulled_at = models.DateTimeField(null=True, blank=True)
    period_lock_date = models.DateField(null=True, blank=True)
    # The currencies the organisation is subscribed to, as last pulled (GET /Currencies).
    currencies = models.JSONField(default=list, blank=True)
    # Payments pull cursor: the newest UpdatedDateUTC seen, advanced only after a full pull.
    payments_high_water_mark = models.DateTimeField(null=True, blank=True)
    payments_pulled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant_name"]

    def __str__(self) -> str:
        return self.tenant_name


class XeroEntityLink(models.Model):
    """Which Xero organisation an entity syncs with.

    `tenant_id` stays after a disconnect: the entity's synced records belong to that
    organisation, so reconnecting it to a different one is refused.
    """

    entity = models.OneToOneField(
        "billing.Entity", on_delete=models.CASCADE, related_name="xero_link"
    )
    connection = models.ForeignKey(
        XeroConnection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="entity_links",
    )
    tenant_id = models.CharField(max_length=36)
    linked_at = models.DateTimeField()
    linked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.entity} → {self.tenant_id}"


class XeroAccount(models.Model):
    """An account in an organisation's chart of accounts, as last pulled from Xero."""

    connection = models.ForeignKey(
        XeroConnection, on_delete=models.CASCADE, related_name="xero_accounts"
    )
    account_id = models.CharField(max_length=36)
    code = models.CharField(max_length=10, blank=True)
    name = models.CharField(max_length=150)
    type = models.CharField(max_length=20)
    status = models.CharField(max_length=20)
    tax_type = models.CharField(max_length=50, blank=True)
    is_system_account = models.BooleanField(default=False)
    enable_payments = models.BooleanField(default=False)
    pulled_at = models.DateTimeField()

    class Meta:
        ordering = ["connection", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "account_id"], name="xero_account_per_connection"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class XeroTaxRate(models.Model):
    connection = models.ForeignKey(
        XeroConnection, on_delete=models.CASCADE, related_name="xero_tax_rates"
    )
    tax_type = models.CharField(max_length=50)
    name = models.CharField(max_length=150)
    effective_rate = models.DecimalField(max_digits=7, decimal_places=4)
    status = models.CharField(max_length=20)
    can_apply_to_revenue = models.BooleanField(default=True)
    pulled_at = models.DateTimeField()

    class Meta:
        ordering = ["connection", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "tax_type"], name="xero_tax_rate_per_connection"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.tax_type})"


class XeroRequest(models.Model):
    """An idempotency key and exactly what was sent with it, stored before the request goes out.

    A retry within Xero's ~6-minute window re-sends the identical body with the same key; after
    that, or when the outcome is unknown, the caller looks records up by business key first.
    """

    connection = models.ForeignKey(XeroConnection, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=128, unique=True)
    operation = models.CharField(max_length=60)
    body = models.JSONField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    # "" not sent yet; ok / error: Xero answered; unknown: the reply was lost, so Xero may have
    # applied it; superseded: an unknown outcome later settled by a look-up and a new key.
    outcome = models.CharField(max_length=20, blank=True)
    response_status = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "created_at"], name="xero_request_conn_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["", "ok", "error", "unknown", "superseded"]),
                name="xero_request_outcome",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.idempotency_key}"


class XeroRecordLink(models.Model):
    """The link between a BMS record (customer, invoice, credit note, payment, journal) and the
    Xero record it became. Kept through a disconnect, keyed by organisation, so reconnecting the
    same organisation resumes without duplicates. "Delete Integration" removes only this row."""

    entity = models.ForeignKey("billing.Entity", on_delete=models.CASCADE, related_name="+")
    tenant_id = models.CharField(max_length=36)
    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    xero_id = models.CharField(max_length=36)
    xero_number = models.CharField(max_length=255, blank=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    pushed_version = models.PositiveIntegerField(null=True, blank=True)
    # What BMS last sent, so the record page can say which fields changed since.
    pushed_snapshot = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id"], name="xero_link_one_per_record"
            ),
        ]
        indexes = [models.Index(fields=["tenant_id", "xero_id"], name="xero_link_tenant_xero_id")]

    def __str__(self) -> str:
        return f"{self.content_type.model} {self.object_id} → {self.xero_id}"


class XeroRequestMember(models.Model):
    """One element of a stored request: which job and record it carries, at which position."""

    request = models.ForeignKey(XeroRequest, on_delete=models.CASCADE, related_name="member_rows")
    position = models.PositiveIntegerField()
    job_id = models.BigIntegerField(db_index=True)
    object_id = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "position"], name="xero_request_position"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id}[{self.position}] job {self.job_id}"


class SyncDirection(models.TextChoices):
    EXPORT = "export", "Do not export"
    IMPORT = "import", "Do not import"


class SyncExclusion(models.Model):
    """ "Do not export" / "Do not import" on a customer, invoice or credit note, with the reason."""

    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    direction = models.CharField(max_length=10, choices=SyncDirection.choices)
    reason = models.CharField(max_length=500)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    set_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "direction"], name="sync_exclusion_once"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="sync_exclusion_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()}: {self.reason}"


class XeroWebhookEvent(models.Model):
    """A webhook event from Xero, stored once (Xero retries deliveries) and handled by a job."""

    tenant_id = models.CharField(max_length=36)
    resource_id = models.CharField(max_length=36)
    event_category = models.CharField(max_length=20)
    event_type = models.CharField(max_length=20)
    event_date = models.DateTimeField()
    received_at = models.DateTimeField()
    handled_at = models.DateTimeField(null=True, blank=True)
    handler_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "resource_id", "event_category", "event_type", "event_date"],
                name="xero_webhook_event_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_category} {self.event_type} {self.resource_id}"


class PaymentAccountMapping(models.Model):
    """The bank account a BMS payment method goes into in the entity's Xero organisation."""

    entity = models.ForeignKey("billing.Entity", on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=20)
    account_code = models.CharField(max_length=10)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entity", "method"], name="payment_account_per_method"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.method} → {self.account_code}"
