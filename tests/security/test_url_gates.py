"""Every URL in bms.urls, classified: method, CSRF and role gates proved against the real views.

The walker is exhaustive: a URL pattern added later without an entry in ROUTES (or, for Django's
own admin site, without the admin's permission checks) fails `test_every_url_is_classified`.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, include, path, reverse

from admin_jobs.models import JobKind, JobState
from bms import clock
from core.selectors import general_settings_get
from journals.models import CostOfSalesJournal
from tests.admin_jobs.factories import BackgroundJobFactory
from tests.billing.factories import (
    AdminUserFactory,
    CreditNoteFactory,
    CustomerFactory,
    EntityFactory,
    InvoiceFactory,
    TaxRateFactory,
    UserFactory,
)
from tests.xero_integration.factories import XeroConnectionFactory, XeroEntityLinkFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"

# How a view may be called.
PAGE = "page"  # GET only; reading it changes nothing; POST answers 405
ACTION = "action"  # POST only; GET answers 405; CSRF-protected
FORM = "form"  # intentionally GET (form or confirmation, side-effect free) and POST (CSRF)
CALLBACK = "callback"  # the OAuth callback: GET, refused unless `state` matches the session
REDIRECT = "redirect"  # "/" just redirects to the invoice list, whatever the method
PUBLIC = "public"  # reachable signed out; authenticates some other way or not at all

# Who may call it.
STAFF = "staff"  # billing clerks (is_staff) and admins
ADMIN = "admin"  # admins only: staff get 403
ANYONE = "anyone"


@dataclass(frozen=True)
class Route:
    kind: str
    role: str
    kwargs: Callable[["Objects"], dict[str, Any]] = field(default=lambda objects: {})
    # What an allowed GET answers when it is not 200 (e.g. a page that needs session state).
    get_status: int = 200


def _pk(attr: str, key: str = "pk") -> Callable[["Objects"], dict[str, Any]]:
    return lambda objects: {key: getattr(objects, attr).pk}


def _record(attr: str, model_key: str) -> Callable[["Objects"], dict[str, Any]]:
    return lambda objects: {"model_key": model_key, "pk": getattr(objects, attr).pk}


# Public endpoints, and the views that are deliberately both a GET page and a POST form, are
# listed here on purpose; every other URL is a GET-only page or a POST-only action.
ROUTES: dict[str, Route] = {
    "home": Route(REDIRECT, STAFF, get_status=302),
    "healthz": Route(PUBLIC, ANYONE),
    "login": Route(PUBLIC, ANYONE),
    "logout": Route(ACTION, STAFF, get_status=405),
    # Billing (staff)
    "billing:customer_list": Route(PAGE, STAFF),
    "billing:customer_create": Route(FORM, STAFF),
    "billing:customer_detail": Route(PAGE, STAFF, _pk("customer")),
    "billing:customer_update": Route(FORM, STAFF, _pk("customer")),
    "billing:customer_archive": Route(ACTION, STAFF, _pk("customer")),
    "billing:invoice_list": Route(PAGE, STAFF),
    "billing:invoice_create": Route(FORM, STAFF),
    "billing:invoice_detail": Route(PAGE, STAFF, _pk("invoice")),
    "billing:invoice_update": Route(FORM, STAFF, _pk("invoice")),
    "billing:invoice_release": Route(ACTION, STAFF, _pk("invoice")),
    "billing:invoice_void": Route(ACTION, STAFF, _pk("invoice")),
    "billing:invoice_payment_create": Route(FORM, STAFF, _pk("invoice")),
    "billing:credit_note_list": Route(PAGE, STAFF),
    "billing:credit_note_create": Route(FORM, STAFF),
    "billing:credit_note_detail": Route(PAGE, STAFF, _pk("credit_note")),
    "billing:credit_note_release": Route(ACTION, STAFF, _pk("credit_note")),
    "billing:credit_note_allocate": Route(FORM, STAFF, _pk("credit_note")),
    # Xero actions on a record (staff), customer bulk sync and import (admin)
    "xero_integration:record_sync": Route(ACTION, STAFF, _record("invoice", "invoice")),
    "xero_integration:record_unlink": Route(FORM, STAFF, _record("customer", "customer")),
    "xero_integration:record_exclusion": Route(ACTION, STAFF, _record("customer", "customer")),
    "xero_integration:bulk_sync": Route(FORM, ADMIN),
    "xero_integration:bulk_progress": Route(PAGE, STAFF, _pk("bulk_job", "job_id")),
    "xero_integration:import_start": Route(FORM, ADMIN),
    "xero_integration:import_review": Route(FORM, ADMIN, _pk("import_job", "job_id")),
    # Admin → General settings, Accounts, Integrations
    "core:general_settings": Route(FORM, ADMIN),
    "core:accounts": Route(PAGE, ADMIN),
    "xero_integration:integrations": Route(PAGE, ADMIN),
    "xero_integration:connect": Route(ACTION, ADMIN, _pk("entity", "entity_id")),
    "xero_integration:callback": Route(CALLBACK, ADMIN, get_status=302),
    "xero_integration:webhooks": Route(PUBLIC, ANYONE),
    # No organisation is waiting to be chosen, so the page sends the admin back.
    "xero_integration:choose": Route(FORM, ADMIN, get_status=302),
    "xero_integration:link_existing": Route(ACTION, ADMIN, _pk("entity", "entity_id")),
    "xero_integration:disconnect": Route(FORM, ADMIN, _pk("connection", "connection_id")),
    "xero_integration:accounts": Route(PAGE, ADMIN),
    "xero_integration:accounts_pull": Route(ACTION, ADMIN, _pk("connection", "connection_id")),
    "xero_integration:tax_rate_map": Route(ACTION, ADMIN, _pk("tax_rate", "tax_rate_id")),
    # Admin → Background Jobs
    "admin_jobs:job_list": Route(PAGE, ADMIN),
    "admin_jobs:job_retry_all_failed": Route(ACTION, ADMIN),
    "admin_jobs:job_detail": Route(PAGE, ADMIN, _pk("failed_job")),
    "admin_jobs:job_retry": Route(ACTION, ADMIN, _pk("failed_job")),
    "admin_jobs:job_cancel": Route(ACTION, ADMIN, _pk("failed_job")),
    "admin_jobs:job_resolve": Route(ACTION, ADMIN, _pk("failed_job")),
    # Admin → Journals and reconciliation
    "journals:list": Route(PAGE, ADMIN),
    "journals:detail": Route(PAGE, ADMIN, _pk("journal", "journal_id")),
    "journals:rebuild": Route(ACTION, ADMIN, _pk("journal", "journal_id")),
    "journals:push": Route(ACTION, ADMIN, _pk("journal", "journal_id")),
    "journals:reconciliation": Route(PAGE, ADMIN),
    "journals:reconciliation_run": Route(ACTION, ADMIN, _pk("connection", "connection_id")),
}

# Django's own admin site (/django-admin/) is classified as a whole: it enforces is_staff plus
# per-model permissions itself, which `test_django_admin_*` prove for every registered model.
DJANGO_ADMIN_NAMESPACE = "admin"
DJANGO_ADMIN_PREFIX = "django-admin/"


@dataclass(frozen=True)
class Pattern:
    key: str  # the qualified URL name, or the route text for an unnamed pattern
    route: str
    namespace: str


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Pattern]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            if entry.name:
                key = f"{namespace}:{entry.name}" if namespace else entry.name
            else:
                key = route
            yield Pattern(key=key, route=route, namespace=namespace)


ALL_PATTERNS = list(_walk(get_resolver().url_patterns))
BMS_PATTERNS = [p for p in ALL_PATTERNS if p.namespace != DJANGO_ADMIN_NAMESPACE]
DJANGO_ADMIN_PATTERNS = [p for p in ALL_PATTERNS if p.namespace == DJANGO_ADMIN_NAMESPACE]

GUARDED = sorted(k for k, r in ROUTES.items() if r.role != ANYONE)
GETTABLE = sorted(k for k, r in ROUTES.items() if r.kind in (PAGE, FORM, CALLBACK, REDIRECT))
POSTABLE = sorted(k for k, r in ROUTES.items() if r.kind in (ACTION, FORM))


def _unclassified(patterns: list[Pattern]) -> list[str]:
    return sorted({p.key for p in patterns if p.namespace != DJANGO_ADMIN_NAMESPACE} - set(ROUTES))


def test_every_url_is_classified():
    found = [p.key for p in BMS_PATTERNS]
    assert len(found) == len(set(found)), "two URL patterns share a name"
    unclassified = _unclassified(ALL_PATTERNS)
    assert unclassified == [], (
        f"classify these URLs in tests/security/test_url_gates.py ROUTES: {unclassified}"
    )
    assert sorted(set(ROUTES) - set(found)) == [], "ROUTES lists URLs that no longer exist"
    # Django's admin site lives only under its own prefix.
    assert DJANGO_ADMIN_PATTERNS
    assert all(p.route.startswith(DJANGO_ADMIN_PREFIX) for p in DJANGO_ADMIN_PATTERNS)
    assert not any(p.route.startswith(DJANGO_ADMIN_PREFIX) for p in BMS_PATTERNS)


def test_a_new_url_without_a_classification_fails_the_walker():
    def export(request: Any) -> Any:
        raise AssertionError("never called")

    added = [
        path("billing/", include(([path("export/", export, name="export")], "billing"))),
        path("api/", include([path("<int:pk>/", export)])),  # unnamed, nested
    ]
    patterns = list(_walk([*get_resolver().url_patterns, *added]))
    assert _unclassified(patterns) == ["api/<int:pk>/", "billing:export"]


class Objects:
    """One real row of every kind a URL needs, made with the factories."""

    def __init__(self) -> None:
        self.entity = EntityFactory()
        self.customer = CustomerFactory(entity=self.entity)
        self.invoice = InvoiceFactory(entity=self.entity, customer=self.customer)
        self.credit_note = CreditNoteFactory(entity=self.entity, customer=self.customer)
        self.tax_rate = TaxRateFactory(entity=self.entity)
        self.connection = XeroConnectionFactory()
        XeroEntityLinkFactory(entity=self.entity, connection=self.connection)
        self.failed_job = BackgroundJobFactory(entity=self.entity, state=JobState.FAILED)
        self.bulk_job = BackgroundJobFactory(
            entity=self.entity, kind=JobKind.BULK_CUSTOMER_SYNC, state=JobState.SUCCEEDED
        )
        self.import_job = BackgroundJobFactory(
            entity=self.entity,
            kind=JobKind.IMPORT_CONTACTS,
            state=JobState.SUCCEEDED,
            result={"tenant_id": self.connection.tenant_id, "contacts": []},
        )
        general_settings_get()  # the settings singleton is created on first read, by design
        now = clock.now()
        self.journal = CostOfSalesJournal.objects.create(
            entity=self.entity,
            journal_date=date(2026, 11, 2),
            currency="NZD",
            checked_at=now,
            created_at=now,
            updated_at=now,
        )


@pytest.fixture
def objects() -> Objects:
    return Objects()


def _url(key: str, objects: Objects) -> str:
    return reverse(key, kwargs=ROUTES[key].kwargs(objects))


def _fingerprint() -> dict[str, int]:
    """Row counts of every table BMS owns (sessions aside: signing in writes one)."""
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model is not Session
    }


def _client(user: Any = None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("key", GUARDED)
def test_signed_out_visitors_are_sent_to_login(key, objects):
    url = _url(key, objects)
    client = _client()
    before = _fingerprint()
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code == 302, (key, method.__name__, response.status_code)
        assert response["Location"].startswith(LOGIN)
    assert _fingerprint() == before


@pytest.mark.parametrize("key", sorted(k for k, r in ROUTES.items() if r.role == ADMIN))
def test_staff_are_refused_every_admin_page_and_action(key, objects):
    route = ROUTES[key]
    url = _url(key, objects)
    client = _client(UserFactory())
    before = _fingerprint()
    if route.kind != ACTION:
        assert client.get(url).status_code == 403, key
    if route.kind in (ACTION, FORM):
        assert client.post(url).status_code == 403, key
    assert _fingerprint() == before


@pytest.mark.parametrize(
    ("key", "role"),
    [
        (k, role)
        for k in GETTABLE
        for role in (STAFF, ADMIN)
        if role == ADMIN or ROUTES[k].role == STAFF
    ],
)
def test_allowed_users_read_pages_and_reading_changes_nothing(key, role, objects):
    route = ROUTES[key]
    client = _client(AdminUserFactory() if role == ADMIN else UserFactory())
    before = _fingerprint()
    response = client.get(_url(key, objects))
    assert response.status_code == route.get_status, (key, response.status_code)
    assert _fingerprint() == before


@pytest.mark.parametrize("key", sorted(k for k, r in ROUTES.items() if r.kind == ACTION))
def test_actions_are_post_only(key, objects):
    client = _client(AdminUserFactory())
    before = _fingerprint()
    for method in (client.get, client.put, client.delete, client.head):
        assert method(_url(key, objects)).status_code == 405, (key, method.__name__)
    assert _fingerprint() == before


@pytest.mark.parametrize("key", sorted(k for k, r in ROUTES.items() if r.kind in (PAGE, CALLBACK)))
def test_pages_refuse_post(key, objects):
    client = _client(AdminUserFactory())
    before = _fingerprint()
    assert client.post(_url(key, objects)).status_code == 405, key
    assert _fingerprint() == before


@pytest.mark.parametrize("key", POSTABLE)
def test_posts_without_a_csrf_token_are_refused(key, objects):
    client = _client(AdminUserFactory(), csrf=True)
    before = _fingerprint()
    response = client.post(_url(key, objects), {"reason": "x", "connection_id": "1"})
    assert response.status_code == 403, (key, response.status_code)
    assert b"CSRF" in response.content
    assert _fingerprint() == before


def test_logout_is_csrf_protected_too(objects):
    client = _client(AdminUserFactory(), csrf=True)
    assert client.post(reverse("logout")).status_code == 403


@pytest.mark.parametrize("key", POSTABLE)
def test_admins_may_post_every_action(key, objects, settings):
    # No Xero host is reachable from here: a view that calls Xero must report it, not crash.
    for name in ("XERO_API_BASE", "XERO_IDENTITY_BASE", "XERO_LOGIN_BASE"):
        setattr(settings, name, "http://127.0.0.1:9")
    client = _client(AdminUserFactory())
    # An empty form: the view answers with its page, a redirect and a message, 400 or 404.
    response = client.post(_url(key, objects))
    assert response.status_code in (200, 302, 400, 404), (key, response.status_code)


@pytest.mark.parametrize(
    "key", sorted(k for k, r in ROUTES.items() if r.role == STAFF and r.kind in (ACTION, FORM))
)
def test_staff_may_post_billing_actions(key, objects):
    response = _client(UserFactory()).post(_url(key, objects))
    assert response.status_code in (200, 302), (key, response.status_code)


# --- Public endpoints ---------------------------------------------------------------------------


def test_healthz_answers_signed_out():
    response = Client().get(reverse("healthz"))
    assert (response.status_code, response.content) == (200, b"ok")


def test_login_page_is_public_and_its_post_needs_csrf():
    assert Client().get(reverse("login")).status_code == 200
    response = Client(enforce_csrf_checks=True).post(
        reverse("login"), {"username": "x", "password": "y"}
    )
    assert response.status_code == 403


def test_the_webhook_is_csrf_exempt_but_refuses_a_missing_or_bad_signature():
    client = Client(enforce_csrf_checks=True)
    url = reverse("xero_integration:webhooks")
    body = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0}'
    missing = client.post(url, body, content_type="application/json")
    bad = client.post(
        url, body, content_type="application/json", headers={"x-xero-signature": "bm90LWl0"}
    )
    assert (missing.status_code, bad.status_code) == (401, 401)
    assert client.get(url).status_code == 405


def test_the_webhook_accepts_a_correctly_signed_body(settings):
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    body = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0}'
    signature = base64.b64encode(
        hmac.new(settings.XERO_WEBHOOK_KEY.encode(), body, hashlib.sha256).digest()
    ).decode()
    response = Client(enforce_csrf_checks=True).post(
        reverse("xero_integration:webhooks"),
        body,
        content_type="application/json",
        headers={"x-xero-signature": signature},
    )
    assert (response.status_code, response.content) == (200, b"")
    assert not response.cookies


# --- Django's admin site ------------------------------------------------------------------------


def test_django_admin_sends_signed_out_visitors_to_login():
    for name in ("admin:index", "admin:password_change"):
        response = Client().get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN)


@pytest.mark.parametrize(
    "model", sorted(admin.site._registry, key=lambda m: m._meta.label), ids=str
)
def test_django_admin_refuses_staff_every_registered_model(model, objects):
    # Django's admin site is for superusers only: billing staff are sent to its login.
    client = _client(UserFactory())
    opts = model._meta
    for view in ("changelist", "add"):
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}")
        for response in (client.get(url), client.post(url)):
            assert response.status_code == 302, url
            assert response["Location"].startswith("/django-admin/login/"), url
    assert (
        _client(AdminUserFactory())
        .get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        .status_code
        == 200
    )
