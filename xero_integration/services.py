"""Connecting entities to Xero organisations, keeping tokens fresh, and Admin → Accounts data.

No Xero call happens inside a database transaction, with one exception: the token refresh, made
under a row lock on the authorisation so concurrent workers refresh at most once per expiry
(reliability-notes.md §4.2).
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import connection as db_connection
from django.db import transaction
from requests import RequestException

from admin_jobs.errors import JobWait
from admin_jobs.services import jobs_resume
from billing.models import Entity, TaxRate
from bms import clock
from xero_integration import client as xero
from xero_integration.models import (
    ConnectionStatus,
    XeroAccount,
    XeroAuthorisation,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
    XeroTaxRate,
)
from xero_integration.ratelimit import limiter_from_settings

logger = logging.getLogger(__name__)

OAUTH_SESSION_KEY = "xero_oauth"
# Refresh well before expiry: longer than the SDK's own 60 s buffer plus a request's timeout, so
# the SDK's unlocked auto-refresh can never fire (reliability-notes.md §4.2).
REFRESH_MARGIN = timedelta(minutes=5)
REFRESH_TOKEN_LIFETIME = timedelta(days=60)
# A scheduled refresh keeps idle authorisations alive long before the 60-day expiry.
IDLE_REFRESH_AFTER = timedelta(days=45)


def _user_or_none(user: AbstractBaseUser | AnonymousUser | None) -> Any:
    return user if user is not None and user.is_authenticated else None


# --- Configuration ------------------------------------------------------------------------------


def xero_configuration_missing() -> list[str]:
    """Names of the settings the Xero integration needs but are not set."""
    required = ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_REDIRECT_URI")
    missing = [name for name in required if not getattr(settings, name, "")]
    if not settings.XERO_TOKEN_ENCRYPTION_KEYS:
        missing.append("XERO_TOKEN_ENCRYPTION_KEYS")
    return missing


# --- OAuth2 authorization-code flow with PKCE -----------------------------------------------------


def _oauth_session() -> OAuth2Session:
    return OAuth2Session(
        client_id=settings.XERO_CLIENT_ID,
        client_secret=settings.XERO_CLIENT_SECRET,
        scope=" ".join(settings.XERO_SCOPES),
        redirect_uri=settings.XERO_REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
    )


def xero_oauth_start(*, session: SessionBase, entity: Entity) -> str:
    """Remember a fresh state and PKCE verifier in the session; return Xero's authorize URL."""
    missing = xero_configuration_missing()
    if missing:
        raise ValidationError(
            f"Xero is not configured: set {', '.join(missing)} in the environment "
            "(see .env.example)."
        )
    verifier = generate_token(64)
    url, state = _oauth_session().create_authorization_url(
        settings.XERO_LOGIN_BASE.rstrip("/") + "/identity/connect/authorize",
        code_verifier=verifier,
    )
    session[OAUTH_SESSION_KEY] = {
        "state": state,
        "verifier": verifier,
        "entity_id": entity.pk,
    }
    return str(url)


@dataclass(frozen=True)
class OAuthResult:
    entity: Entity
    authorisation: XeroAuthorisation
    connections: list[XeroConnection]


def xero_oauth_complete(
    *,
    session: SessionBase,
    params: dict[str, str],
    user: AbstractBaseUser | AnonymousUser | None,
) -> OAuthResult:
    """Check the callback, exchange the code on the server, and record the organisations.

    Refuses (ValidationError, nothing stored) a callback this session did not start, a wrong
    `state`, a cancelled consent, and a code Xero will not exchange (reused or expired).
    """
    pending = session.pop(OAUTH_SESSION_KEY, None)
    session.modified = True
    if not pending:
        raise ValidationError(
            "This Xero sign-in was not started from this browser, or was already completed; "
            "start again from Admin → Integrations."
        )
    if not hmac.compare_digest(str(params.get("state", "")), str(pending["state"])):
        raise ValidationError(
            "The reply from Xero does not belong to the sign-in this browser started (state "
            "mismatch), so it was refused and nothing was changed. Start again."
        )
    entity = Entity.objects.get(pk=pending["entity_id"])
    if params.get("error"):
        if params["error"] == "access_denied":
            raise ValidationError(
                f"The Xero sign-in for {entity.name} was cancelled; nothing was changed."
            )
        raise ValidationError(f"Xero refused the sign-in ({params['error']}); nothing was changed.")
    code = params.get("code", "")
    if not code:
        raise ValidationError("Xero's reply carried no authorisation code; start again.")
    try:
        raw = _oauth_session().fetch_token(
            settings.XERO_IDENTITY_BASE.rstrip("/") + "/connect/token",
            grant_type="authorization_code",
            code=code,
            code_verifier=pending["verifier"],
            timeout=settings.XERO_HTTP_TIMEOUT_SECONDS,
        )
    except OAuthError as exc:
        raise ValidationError(
            f"Xero would not exchange the sign-in code ({exc.error}): it was already used or has "
            "expired. Start again; nothing was changed."
        ) from None
    except RequestException as exc:
        raise ValidationError(
            f"Xero's sign-in service did not answer ({type(exc).__name__}); try again."
        ) from None
    tokens = xero._token_set(dict(raw))
    tenants = xero.connections_list(
        access_token=tokens.access_token, auth_event_id=tokens.auth_event_id or None
    )
    tenants = [t for t in tenants if t.tenant_type == "ORGANISATION"]
    if not tenants:
        raise ValidationError(
            "No Xero organisation was authorised: tick at least one organisation on Xero's page."
        )
    now = clock.now()
    with transaction.atomic():
        authorisation = XeroAuthorisation.objects.create(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_token_expires_at=now + timedelta(seconds=tokens.expires_in),
            refresh_token_issued_at=now,
            scopes=" ".join(tokens.scopes),
            auth_event_id=tokens.auth_event_id,
            xero_user_id=tokens.xero_user_id,
            created_at=now,
            created_by=_user_or_none(user),
        )
        connections = []
        for tenant in tenants:
            conn, _ = XeroConnection.objects.update_or_create(
                tenant_id=tenant.tenant_id,
                defaults={
                    "tenant_name": tenant.tenant_name,
                    "xero_connection_id": tenant.connection_id,
                    "authorisation": authorisation,
                    "status": ConnectionStatus.CONNECTED,
                    "status_detail": "",
                    "connected_at": now,
                    "connected_by": _user_or_none(user),
                    "paused_until": None,
                },
            )
            connections.append(conn)
            # Entities whose records already belong to this organisation resume at once.
            XeroEntityLink.objects.filter(tenant_id=tenant.tenant_id).update(connection=conn)
        _resume_entities([conn.pk for conn in connections])
    return OAuthResult(entity=entity, authorisation=authorisation, connections=connections)


def _resume_entities(connection_ids: list[int]) -> None:
    entity_ids = list(
        XeroEntityLink.objects.filter(connection_id__in=connection_ids).values_list(
            "entity_id", flat=True
        )
    )
    if entity_ids:
        # In the same transaction as the reconnection, so the resume cannot be lost.
        jobs_resume(entity_ids=entity_ids)


def entity_has_synced_records(*, entity: Entity, tenant_id: str) -> bool:
    return XeroRecordLink.objects.filter(entity=entity, tenant_id=tenant_id).exists()


def entity_link_connection(
    *, entity: Entity, connection: XeroConnection, user: AbstractBaseUser | AnonymousUser | None
) -> XeroEntityLink:
    """Make `entity` sync with `connection`'s organisation.

    Refused when the entity's records are already synced with another organisation: moving them
    "can disrupt existing synced records".
    """
    with transaction.atomic():
        existing = XeroEntityLink.objects.select_for_update().filter(entity=entity).first()
        if (
            existing is not None
            and existing.tenant_id != connection.tenant_id
            and entity_has_synced_records(entity=entity, tenant_id=existing.tenant_id)
        ):
            previous = XeroConnection.objects.filter(tenant_id=existing.tenant_id).first()
            previous_name = previous.tenant_name if previous else existing.tenant_id
            raise ValidationError(
                f"{entity.name}'s records are synced with the Xero organisation "
                f"“{previous_name}”. Connecting it to “{connection.tenant_name}” instead would "
                "disrupt existing synced records, so it was refused. Re-authorise "
                f"“{previous_name}” instead."
            )
        link, _ = XeroEntityLink.objects.update_or_create(
            entity=entity,
            defaults={
                "connection": connection,
                "tenant_id": connection.tenant_id,
                "linked_at": clock.now(),
                "linked_by": _user_or_none(user),
            },
        )
        jobs_resume(entity_ids=[entity.pk])
    return link


# --- Tokens -------------------------------------------------------------------------------------


def _lock_timeout() -> None:
    # The refresh is the one Xero call made under a row lock; a waiter gives up rather than
    # queueing behind a hung refresh for ever (its job retries).
    if db_connection.vendor == "postgresql":
        with db_connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '20s'")


def access_token_for(*, authorisation_id: int) -> str:
    """A valid access token for the authorisation, refreshing it at most once per expiry.

    Raises XeroAuthError (and marks its organisations as needing re-authorisation) when Xero
    refuses the refresh token, and XeroTransientError when the refresh reply is lost — Xero keeps
    the old refresh token usable for 30 minutes, so the next attempt recovers.
    """
    auth = XeroAuthorisation.objects.get(pk=authorisation_id)
    if auth.is_revoked:
        raise xero.XeroAuthError("This Xero authorisation was revoked; re-authorise it.")
    if auth.access_token_expires_at > clock.now() + REFRESH_MARGIN:
        return str(auth.access_token)
    refused: xero.XeroAuthError | None = None
    with transaction.atomic():
        _lock_timeout()
        auth = XeroAuthorisation.objects.select_for_update().get(pk=authorisation_id)
        # Another worker may have refreshed while this one waited for the lock: re-read wins.
        if auth.access_token_expires_at > clock.now() + REFRESH_MARGIN:
            return str(auth.access_token)
        try:
            tokens = _token_refresh_with_retries(auth)
        except xero.XeroAuthError as exc:
            refused = exc
            auth.last_refresh_error = exc.message
            auth.save(update_fields=["last_refresh_error"])
            _connections_need_reauth(
                connection_ids=list(auth.connections.values_list("pk", flat=True)),
                reason=exc.message,
            )
        except xero.XeroTransientError as exc:
            logger.warning(
                "xero token refresh for authorisation %s failed: %s", auth.pk, exc.message
            )
            raise
        else:
            now = clock.now()
            auth.access_token = tokens.access_token
            auth.refresh_token = tokens.refresh_token
            auth.access_token_expires_at = now + timedelta(seconds=tokens.expires_in)
            auth.refresh_token_issued_at = now
            auth.generation += 1
            auth.last_refreshed_at = now
            auth.last_refresh_error = ""
            auth.save()
    if refused is not None:
        raise refused
    return str(auth.access_token)


REFRESH_RETRY_PAUSES = (0.2, 1.0)


def _token_refresh_with_retries(auth: XeroAuthorisation) -> xero.TokenSet:
    """Refresh, retrying at once when the reply is lost: Xero honours the previous refresh token
    for only 30 minutes after it rotated (xero-api-notes.md §5), so waiting for the job's own
    back-off could let that grace run out and lose the connection."""
    for pause in (*REFRESH_RETRY_PAUSES, None):
        try:
            return xero.token_refresh(
                refresh_token=str(auth.refresh_token), scopes=auth.scopes.split()
            )
        except xero.XeroTransientError:
            if pause is None:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")


def _connections_need_reauth(*, connection_ids: list[int], reason: str) -> None:
    XeroConnection.objects.filter(pk__in=connection_ids).exclude(
        status=ConnectionStatus.DISCONNECTED
    ).update(status=ConnectionStatus.NEEDS_REAUTH, status_detail=reason)


def connection_mark_needs_reauth(*, connection_id: int, reason: str) -> None:
    """A disconnect made on Xero's side: jobs wait (XeroAuthError) until re-authorised."""
    _connections_need_reauth(connection_ids=[connection_id], reason=reason)


def authorisations_refresh_idle() -> int:
    """Refresh authorisations not refreshed for 45 days, so none reaches the 60-day expiry."""
    cutoff = clock.now() - IDLE_REFRESH_AFTER
    refreshed = 0
    for auth in XeroAuthorisation.objects.filter(
        is_revoked=False, refresh_token_issued_at__lt=cutoff
    ):
        # Expire the access token so access_token_for refreshes under the lock.
        XeroAuthorisation.objects.filter(pk=auth.pk).update(access_token_expires_at=cutoff)
        try:
            access_token_for(authorisation_id=auth.pk)
            refreshed += 1
        except (xero.XeroAuthError, xero.XeroTransientError) as exc:
            logger.warning("idle refresh of authorisation %s failed: %s", auth.pk, exc.message)
    return refreshed


# --- Disconnect ---------------------------------------------------------------------------------


def connection_disconnect(
    *, connection: XeroConnection, user: AbstractBaseUser | AnonymousUser | None
) -> None:
    """Remove this organisation's connection in Xero and here; record links are kept.

    Revoking a refresh token removes every organisation of that authorisation, so it is revoked
    only when no other organisation still uses it.
    """
    auth = connection.authorisation
    if auth is not None and not auth.is_revoked:
        try:
            token = access_token_for(authorisation_id=auth.pk)
        except xero.XeroAuthError:
            token = None  # already revoked on Xero's side: nothing to remove there
        if token is not None:
            if connection.xero_connection_id:
                xero.connection_delete(
                    access_token=token, connection_id=connection.xero_connection_id
                )
            still_used = auth.connections.exclude(pk=connection.pk).exclude(
                status=ConnectionStatus.DISCONNECTED
            )
            if not still_used.exists():
                xero.token_revoke(refresh_token=str(auth.refresh_token))
                XeroAuthorisation.objects.filter(pk=auth.pk).update(is_revoked=True)
    with transaction.atomic():
        XeroConnection.objects.filter(pk=connection.pk).update(
            status=ConnectionStatus.DISCONNECTED,
            status_detail=f"Disconnected by {getattr(user, 'username', 'BMS')}.",
            authorisation=None,
        )
        # Entities keep their tenant_id, so reconnecting the same organisation resumes.
        XeroEntityLink.objects.filter(connection=connection).update(connection=None)


# --- Clients for sync services -------------------------------------------------------------------


def _store_limits(connection_id: int, limits: xero.CallLimits) -> None:
    XeroConnection.objects.filter(pk=connection_id).update(
        day_limit_remaining=limits.day_remaining,
        minute_limit_remaining=limits.minute_remaining,
        app_minute_limit_remaining=limits.app_minute_remaining,
        limits_seen_at=clock.now(),
    )


def _store_last_call(connection_id: int, released_at: float) -> None:
    XeroConnection.objects.filter(pk=connection_id).update(
        last_call_at=datetime.fromtimestamp(released_at, tz=UTC)
    )


def _on_error(connection_id: int, error: xero.XeroError) -> None:
    if isinstance(error, xero.XeroAuthError):
        connection_mark_needs_reauth(connection_id=connection_id, reason=error.message)
    elif isinstance(error, xero.XeroRateLimitError):
        XeroConnection.objects.filter(pk=connection_id).update(
            paused_until=datetime.fromtimestamp(error.retry_at, tz=UTC)
        )


def xero_client_for_connection(*, connection: XeroConnection) -> xero.XeroClient:
    if connection.status != ConnectionStatus.CONNECTED or connection.authorisation_id is None:
        raise xero.XeroAuthError(
            f"The Xero organisation “{connection.tenant_name}” is "
            f"{connection.get_status_display().lower()}: an admin must re-authorise it in "
            "Admin → Integrations; its jobs carry on after that."
        )
    if connection.paused_until and connection.paused_until > clock.now():
        raise xero.XeroRateLimitError(
            f"Xero asked BMS to wait before calling “{connection.tenant_name}” again.",
            problem="paused",
            retry_at=connection.paused_until.timestamp(),
        )
    token = access_token_for(authorisation_id=connection.authorisation_id)
    return xero.XeroClient(
        tenant_id=connection.tenant_id,
        access_token=token,
        limiter=limiter_from_settings(),
        on_limits=partial(_store_limits, connection.pk),
        on_error=partial(_on_error, connection.pk),
        on_released=partial(_store_last_call, connection.pk),
        last_call_at=connection.last_call_at.timestamp() if connection.last_call_at else None,
    )


def xero_client_for_entity(*, entity: Entity) -> xero.XeroClient:
    """The client for the organisation this entity syncs with; checks the tenant matches."""
    link = XeroEntityLink.objects.select_related("connection").filter(entity=entity).first()
    if link is None or link.connection is None:
        raise JobWait(
            f"{entity.name} is not connected to Xero: connect it in Admin → Integrations; its "
            "jobs carry on after that.",
            until=None,
        )
    if link.connection.tenant_id != link.tenant_id:
        raise xero.XeroTenantMismatchError(
            f"{entity.name} belongs to Xero organisation {link.tenant_id} but its connection "
            f"reaches {link.connection.tenant_id}; BMS stopped rather than write to the wrong "
            "organisation."
        )
    return xero_client_for_connection(connection=link.connection)


# --- Admin → Accounts -------------------------------------------------------------------------


def xero_accounts_pull(*, connection: XeroConnection) -> tuple[int, int]:
    """Pull the organisation's details, chart of accounts and tax rates; returns the counts."""
    api = xero_client_for_connection(connection=connection)
    organisation = api.organisation_get()
    accounts = api.accounts_list()
    tax_rates = api.tax_rates_list()
    currencies = api.currencies_list()
    now = clock.now()
    with transaction.atomic():
        for account in accounts:
            XeroAccount.objects.update_or_create(
                connection=connection,
                account_id=account.account_id,
                defaults={
                    "code": account.code,
                    "name": account.name,
                    "type": account.type,
                    "status": account.status,
                    "tax_type": account.tax_type,
                    "is_system_account": account.is_system_account,
                    "enable_payments": account.enable_payments,
                    "pulled_at": now,
                },
            )
        XeroAccount.objects.filter(connection=connection).exclude(
            account_id__in=[a.account_id for a in accounts]
        ).delete()
        for rate in tax_rates:
            XeroTaxRate.objects.update_or_create(
                connection=connection,
                tax_type=rate.tax_type,
                defaults={
                    "name": rate.name,
                    "effective_rate": rate.effective_rate,
                    "status": rate.status,
                    "can_apply_to_revenue": rate.can_apply_to_revenue,
                    "pulled_at": now,
                },
            )
        XeroTaxRate.objects.filter(connection=connection).exclude(
            tax_type__in=[r.tax_type for r in tax_rates]
        ).delete()
        XeroConnection.objects.filter(pk=connection.pk).update(
            tenant_name=organisation.name or connection.tenant_name,
            base_currency=organisation.base_currency,
            short_code=organisation.short_code,
            period_lock_date=organisation.period_lock_date,
            currencies=sorted({*currencies, organisation.base_currency}),
            accounts_pulled_at=now,
        )
    return len(accounts), len(tax_rates)


def tax_rate_map(*, tax_rate: TaxRate, xero_tax_type: str) -> TaxRate:
    """Map a BMS tax rate to one of its organisation's tax types (as last pulled)."""
    link = XeroEntityLink.objects.filter(entity_id=tax_rate.entity_id).first()
    if link is None:
        raise ValidationError(
            {"xero_tax_type": f"{tax_rate.entity} is not connected to a Xero organisation."}
        )
    if xero_tax_type:
        found = XeroTaxRate.objects.filter(
            connection__tenant_id=link.tenant_id, tax_type=xero_tax_type, status="ACTIVE"
        ).first()
        if found is None:
            raise ValidationError(
                {
                    "xero_tax_type": (
                        f"Tax type {xero_tax_type} is not an active tax rate of the Xero "
                        "organisation; pull the accounts again or choose another."
                    )
                }
            )
    TaxRate.objects.filter(pk=tax_rate.pk).update(xero_tax_type=xero_tax_type)
    tax_rate.refresh_from_db()
    return tax_rate
