import threading
from datetime import timedelta

import pytest
from django.db import connections

from bms import clock
from tests.billing.factories import AdminUserFactory, EntityFactory
from xero_integration import client as xero
from xero_integration import services
from xero_integration.models import ConnectionStatus, XeroAuthorisation, XeroConnection


def _connected(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    return entity, XeroAuthorisation.objects.get()


def _refreshes(xero_env, since: int) -> list[dict]:
    return [
        e for e in xero_env.sandbox.requests_log(since)
        if e["path"] == "/connect/token" and e["method"] == "POST"
    ]  # fmt: skip


def _expire_access_token(xero_env, authorisation):
    # 31 minutes later on both clocks: BMS sees an expired token and so does Xero.
    xero_env.advance(31 * 60)
    assert authorisation.access_token_expires_at < clock.now()


def _concurrent_callers(authorisation_id: int, count: int) -> tuple[list[str], list[Exception]]:
    barrier = threading.Barrier(count)
    tokens: list[str] = []
    errors: list[Exception] = []

    def caller() -> None:
        try:
            barrier.wait()
            tokens.append(services.access_token_for(authorisation_id=authorisation_id))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=caller) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return tokens, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_callers_at_expiry_refresh_exactly_once(client, xero_env):
    _, authorisation = _connected(client, xero_env)
    _expire_access_token(xero_env, authorisation)
    start = xero_env.sandbox.last_seq()
    tokens, errors = _concurrent_callers(authorisation.pk, 20)
    assert errors == []
    assert len(tokens) == 20 and len(set(tokens)) == 1
    assert len(_refreshes(xero_env, start)) == 1
    assert [e["status"] for e in _refreshes(xero_env, start)] == [200]
    authorisation.refresh_from_db()
    assert authorisation.generation == 2
    assert authorisation.access_token == tokens[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_the_row_lock_concurrent_callers_refresh_more_than_once(
    client, xero_env, monkeypatch
):
    """Proves the test above can fail: the same callers without the lock refresh repeatedly."""
    _, authorisation = _connected(client, xero_env)
    _expire_access_token(xero_env, authorisation)
    manager = XeroAuthorisation.objects
    monkeypatch.setattr(type(manager), "select_for_update", lambda self, **kw: manager.all())
    start = xero_env.sandbox.last_seq()
    _tokens, _errors = _concurrent_callers(authorisation.pk, 20)
    assert len(_refreshes(xero_env, start)) > 1


@pytest.mark.django_db
def test_a_lost_refresh_reply_is_recovered_at_once_through_xeros_grace_period(client, xero_env):
    _, authorisation = _connected(client, xero_env)
    _expire_access_token(xero_env, authorisation)
    xero_env.sandbox.set_fault("token_reply_lost", "POST /connect/token", count=1)
    start = xero_env.sandbox.last_seq()
    token = services.access_token_for(authorisation_id=authorisation.pk)
    # The first refresh rotated the token in Xero but its reply was lost; the immediate retry
    # with the same (old) refresh token is honoured within the 30-minute grace (notes §5).
    assert [e["dropped"] for e in _refreshes(xero_env, start)] == [True, False]
    authorisation.refresh_from_db()
    assert (authorisation.generation, authorisation.access_token) == (2, token)


@pytest.mark.django_db
def test_when_every_retry_is_lost_a_later_call_within_the_grace_recovers(client, xero_env):
    _, authorisation = _connected(client, xero_env)
    _expire_access_token(xero_env, authorisation)
    xero_env.sandbox.set_fault("token_reply_lost", "POST /connect/token", count=3)
    with pytest.raises(xero.XeroTransientError) as exc:
        services.access_token_for(authorisation_id=authorisation.pk)
    assert exc.value.outcome_unknown is True
    authorisation.refresh_from_db()
    assert authorisation.generation == 1  # nothing stored: no reply ever came
    xero_env.advance(10 * 60)
    token = services.access_token_for(authorisation_id=authorisation.pk)
    authorisation.refresh_from_db()
    assert (authorisation.generation, authorisation.access_token) == (2, token)
    assert XeroConnection.objects.get().status == ConnectionStatus.CONNECTED


@pytest.mark.django_db
def test_invalid_grant_marks_every_organisation_of_the_authorisation(client, xero_env):
    _, authorisation = _connected(client, xero_env)
    xero_env.advance(61 * 24 * 3600)  # refresh tokens expire after 60 days
    with pytest.raises(xero.XeroAuthError):
        services.access_token_for(authorisation_id=authorisation.pk)
    connection = XeroConnection.objects.get()
    assert connection.status == ConnectionStatus.NEEDS_REAUTH
    assert "invalid_grant" in connection.status_detail
    authorisation.refresh_from_db()
    assert authorisation.generation == 1


@pytest.mark.django_db
def test_a_fresh_token_is_not_refreshed(client, xero_env):
    _, authorisation = _connected(client, xero_env)
    start = xero_env.sandbox.last_seq()
    assert (
        services.access_token_for(authorisation_id=authorisation.pk) == authorisation.access_token
    )
    assert _refreshes(xero_env, start) == []


@pytest.mark.django_db
def test_idle_authorisations_are_refreshed_before_sixty_days(client, xero_env):
    _, authorisation = _connected(client, xero_env)
    xero_env.advance(46 * 24 * 3600)
    assert services.authorisations_refresh_idle() == 1
    authorisation.refresh_from_db()
    assert authorisation.generation == 2
    assert authorisation.refresh_token_issued_at > clock.now() - timedelta(minutes=1)
