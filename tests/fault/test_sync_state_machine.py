"""A model-based test of the whole sync: BMS's real services and job engine against the sandbox,
driven by random sequences of customer and invoice changes, Sync presses, Xero-side actions and
faults (reliability-notes.md §5.2–§5.4).

After every step: no Xero record is duplicated per business key, no invoice exists before its
contact, and every BMS link points at a record of the same organisation. Once faults stop,
everything converges: valid records are in Xero exactly once and linked; invalid ones are absent
from Xero and carry a recorded error.

Clocks move together (BMS and the sandbox) instead of waiting. 200 examples run in CI; run 2,000
with `BMS_FAULT_EXAMPLES=2000 python3 dev.py test tests/fault -k state_machine`.

Two deliberately broken engines run through the same machine and must be caught:
* "no idempotency": every attempt a fresh key and no look-up after an unknown outcome;
* "stable key, no look-up": the first key reused for ever, no look-up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from admin_jobs.models import (
    UNFINISHED_STATES,
    UNSTARTED_STATES,
    BackgroundJob,
    JobKind,
    JobState,
)
from admin_jobs.services import _earlier_unfinished, job_run
from billing.models import AccountType, Customer, Invoice
from billing.services import LineInput, customer_update, invoice_create, invoice_release
from bms import clock
from tests.billing.factories import AccountFactory, CustomerFactory, EntityFactory, TaxRateFactory
from tests.conftest import IN_CI
from xero_integration import contact_sync, invoice_sync
from xero_integration import requests as xero_requests
from xero_integration.models import (
    ConnectionStatus,
    XeroAuthorisation,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
)
from xero_integration.services import access_token_for
from xero_sandbox.seed import DEMO_NZ_TENANT_ID
from xero_sandbox.testing import SandboxHandle

EXAMPLES = int(os.environ.get("BMS_FAULT_EXAMPLES", "200"))
# An example takes about 0.8 s; the suite-wide 300 s timeout cut the documented 2,000-example
# run short (and the 200 of CI took 166 s of it), so the limit grows with the examples asked for.
pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.timeout(max(600, 3 * EXAMPLES)),
]
SHRINK = os.environ.get("BMS_FAULT_SHRINK", "1") == "1"
GOOD_EMAIL = "accounts@example.com"
WRITE_ROUTES = ["PUT /Contacts", "POST /Contacts", "PUT /Invoices", "POST /Invoices"]
NAMES = ["Harbour Cafe", "Dockside Deli", "Café Mañana", "O'Reilly & Sons", "Zoë's Crêperie"]


class SimulatedCrash(BaseException):
    """A worker killed between Xero's reply and BMS's commit: not an Exception, so nothing in
    the engine catches it, exactly like SIGKILL."""


class Engine:
    """Switches that turn the safe engine into a deliberately broken one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.crash_next_reply = False


@contextmanager
def engine_patched(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_mark = xero_requests.xero_request_mark

    def mark(*, request: Any, outcome: str, status: int | None = None) -> None:
        if outcome == "ok" and engine.crash_next_reply:
            engine.crash_next_reply = False
            raise SimulatedCrash
        real_mark(request=request, outcome=outcome, status=status)

    monkeypatch.setattr(xero_requests, "xero_request_mark", mark)
    for module in (contact_sync, invoice_sync):
        monkeypatch.setattr(module, "xero_request_mark", mark)
    if engine.kind in ("no_idempotency", "key_only"):
        # No look-up by business key after an unknown outcome.
        monkeypatch.setattr(contact_sync, "_contact_by_number", lambda api, number: None)
        monkeypatch.setattr(invoice_sync._Kind, "find_by_numbers", lambda self, api, numbers: {})
    if engine.kind == "no_idempotency":
        # Never replay the stored request: every attempt is a new request with a new key.
        monkeypatch.setattr(contact_sync, "xero_request_is_replayable", lambda request: False)
        monkeypatch.setattr(invoice_sync, "xero_request_is_replayable", lambda request: False)
    if engine.kind == "key_only":
        # Replay the first key for ever, even after Xero has forgotten it.
        monkeypatch.setattr(contact_sync, "xero_request_is_replayable", lambda request: True)
        monkeypatch.setattr(invoice_sync, "xero_request_is_replayable", lambda request: True)
    yield


def _connect(sandbox: SandboxHandle) -> Any:
    grant = sandbox.authorize(tenant_ids=[DEMO_NZ_TENANT_ID])
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", base_currency="NZD")
    now = clock.now()
    auth = XeroAuthorisation.objects.create(
        access_token=grant.token_set["access_token"],
        refresh_token=grant.token_set["refresh_token"],
        access_token_expires_at=now + timedelta(seconds=1800),
        refresh_token_issued_at=now,
        scopes=grant.token_set["scope"],
        created_at=now,
    )
    connection = XeroConnection.objects.create(
        tenant_id=DEMO_NZ_TENANT_ID,
        tenant_name="Kiwi Coffee Roasters Ltd",
        xero_connection_id=grant.connections[0]["id"],
        authorisation=auth,
        status=ConnectionStatus.CONNECTED,
        connected_at=now,
    )
    XeroEntityLink.objects.create(
        entity=entity, connection=connection, tenant_id=DEMO_NZ_TENANT_ID, linked_at=now
    )
    return entity


class SyncMachine(RuleBasedStateMachine):
    sandbox: SandboxHandle
    engine: Engine
    redis_url: str

    def __init__(self) -> None:
        super().__init__()
        self.sandbox.reset("demo", webhook_url=None)
        # Xero's limits are scaled out of the way: this test is about faults, not pacing.
        self.sandbox.set_limits(enabled=False)
        limiter = redis.Redis.from_url(self.redis_url)
        for key in limiter.scan_iter("bms:xero-rl*"):
            limiter.delete(key)
        self.entity = _connect(self.sandbox)
        self.sales = AccountFactory(entity=self.entity, code="200", type=AccountType.REVENUE)
        self.bank = AccountFactory(entity=self.entity, code="090", type=AccountType.BANK)
        self.gst = TaxRateFactory(entity=self.entity, rate=Decimal("15"), xero_tax_type="OUTPUT2")
        self.customers: list[Customer] = []
        self.valid_customers: set[int] = set()
        self.invoices: list[Invoice] = []
        self.valid_invoices: set[int] = set()
        self.faults_on = True

    # --- BMS side ---------------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), good_email=st.booleans())
    def add_customer(self, name: str, good_email: bool) -> None:
        taken = {c.name for c in self.customers}
        customer = CustomerFactory(
            entity=self.entity,
            name=name,
            email=GOOD_EMAIL if good_email else "not-an-email",
        )
        self.customers.append(customer)
        if good_email and name not in taken:
            self.valid_customers.add(customer.pk)

    @precondition(lambda self: self.customers)
    @rule(data=st.data(), good_account=st.booleans(), lines=st.integers(1, 3))
    def release_invoice(self, data: st.DataObject, good_account: bool, lines: int) -> None:
        customer = data.draw(st.sampled_from(self.customers))
        account = self.sales if good_account else self.bank
        with transaction.atomic():
            invoice = invoice_create(
                entity=self.entity,
                customer=customer,
                issue_date=clock.now().date(),
                lines=[
                    LineInput(
                        description=f"Beans {n}", quantity=Decimal(n + 1),
                        unit_price=Decimal("12.3456"), account_id=account.pk,
                        tax_rate_id=self.gst.pk,
                    )
                    for n in range(lines)
                ],
            )  # fmt: skip
            invoice = invoice_release(invoice=invoice)
        self.invoices.append(invoice)
        if good_account and customer.pk in self.valid_customers:
            self.valid_invoices.add(invoice.pk)

    @precondition(lambda self: any(c.email == GOOD_EMAIL for c in self.customers))
    @rule(data=st.data(), phone=st.integers(100, 999))
    def edit_customer(self, data: st.DataObject, phone: int) -> None:
        editable = [c for c in self.customers if c.email == GOOD_EMAIL]
        customer = data.draw(st.sampled_from(editable))
        customer_update(customer=customer, data={"phone": f"09 {phone}"})

    @precondition(lambda self: self.customers)
    @rule(data=st.data(), presses=st.integers(1, 3))
    def press_sync(self, data: st.DataObject, presses: int) -> None:
        customer = data.draw(st.sampled_from(self.customers))
        ids = {contact_sync.customer_push_enqueue(customer=customer).pk for _ in range(presses)}
        assert len(ids) == 1, "two Sync presses must collapse into one job"

    # --- Xero side and faults -------------------------------------------------------------

    @precondition(lambda self: self.faults_on)
    @rule(route=st.sampled_from(WRITE_ROUTES))
    def reply_lost_after_xero_commits(self, route: str) -> None:
        self.sandbox.set_fault("commit_then_drop", route, count=1)

    @precondition(lambda self: self.faults_on)
    @rule(
        route=st.sampled_from([*WRITE_ROUTES, "GET *"]),
        kind=st.sampled_from(["error500", "error503", "rate_limit"]),
    )
    def next_request_fails(self, route: str, kind: str) -> None:
        if kind == "rate_limit":
            self.sandbox.set_fault("rate_limit", route, retry_after=1, count=1)
        else:
            self.sandbox.set_fault("error", route, status=int(kind[5:]), count=1)

    @precondition(lambda self: self.faults_on)
    @rule()
    def crash_after_next_reply(self) -> None:
        self.engine.crash_next_reply = True

    # The refresh runs in this step, so one lost reply is armed at a time: BMS retries a refresh
    # at once, and Xero honours the old refresh token for 30 minutes. Replies lost for longer
    # than that lose the connection in real Xero too (tests/xero_integration covers that).
    @precondition(lambda self: self.faults_on)
    @rule()
    def lose_next_token_refresh_reply(self) -> None:
        self.sandbox.set_fault("token_reply_lost", "POST /connect/token", count=1)
        self._advance(31 * 60)  # the access token expires: this refresh loses its reply
        access_token_for(authorisation_id=XeroAuthorisation.objects.get().pk)

    @rule(seconds=st.sampled_from([1, 61, 400]))
    def time_passes(self, seconds: int) -> None:
        self._advance(seconds)

    @precondition(lambda self: self.customers)
    @rule(data=st.data())
    def archive_contact_in_xero(self, data: st.DataObject) -> None:
        customer = data.draw(st.sampled_from(self.customers))
        link = XeroRecordLink.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk
        ).first()
        if link is not None:
            self.sandbox.archive_contact(DEMO_NZ_TENANT_ID, link.xero_id)
            # Xero refuses new invoices for an archived contact: its invoices stop being valid.
            self.valid_customers.discard(customer.pk)
            self.valid_invoices -= {
                i.pk for i in self.invoices if i.customer_id == customer.pk and not _linked(i)
            }

    # --- Workers ----------------------------------------------------------------------------

    @rule(duplicate=st.booleans())
    def worker_step(self, duplicate: bool) -> None:
        job_id = _next_due_job()
        if job_id is None:
            return
        try:
            job_run(job_id=job_id)
        except SimulatedCrash:
            return
        if duplicate:
            job_run(job_id=job_id)  # a redelivered message must do nothing

    @rule()
    def workers_catch_up(self) -> None:
        """Several workers run everything that is due (no time passes)."""
        for _ in range(50):
            job_id = _next_due_job()
            if job_id is None:
                return
            try:
                job_run(job_id=job_id)
            except SimulatedCrash:
                return

    # --- Invariants -------------------------------------------------------------------------

    @invariant()
    def nothing_duplicated_and_no_orphans(self) -> None:
        _assert_xero_consistent(self.sandbox)

    def teardown(self) -> None:
        try:
            # The faults still armed bite first; then they stop and everything must converge.
            self.workers_catch_up()
            self.faults_on = False
            self.sandbox.clear_faults()
            self.engine.crash_next_reply = False
            _drain(self)
            _assert_xero_consistent(self.sandbox)
            _assert_converged(self)
        finally:
            _wipe()

    def _advance(self, seconds: float) -> None:
        clock.advance(seconds=seconds)
        self.sandbox.clock.advance(seconds)


def _linked(obj: Any) -> bool:
    return XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).exists()


def _next_due_job() -> int | None:
    """The job a worker would claim next, by the engine's own rule."""
    now = clock.now()
    due = Q(state__in=UNSTARTED_STATES, not_before__lte=now)
    abandoned = Q(state=JobState.RUNNING, lease_until__lt=now)
    return (
        BackgroundJob.objects.filter(due | abandoned)
        .exclude(_earlier_unfinished())
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )


def _drain(machine: SyncMachine) -> None:
    """Run every job to its end, moving time as workers would wait (retries, leases)."""
    for _ in range(400):
        job_id = _next_due_job()
        if job_id is not None:
            job_run(job_id=job_id)
            continue
        if not BackgroundJob.objects.filter(state__in=UNFINISHED_STATES).exists():
            return
        machine._advance(600)
    unfinished = list(
        BackgroundJob.objects.filter(state__in=UNFINISHED_STATES).values(
            "pk", "kind", "state", "wait_reason", "error_message"
        )
    )
    raise AssertionError(f"jobs did not finish: {unfinished}")


def _assert_xero_consistent(sandbox: SandboxHandle) -> None:
    org = sandbox.org(DEMO_NZ_TENANT_ID)
    contacts = org["contacts"]
    numbers = [c["ContactNumber"] for c in contacts.values() if c.get("ContactNumber")]
    assert len(numbers) == len(set(numbers)), f"duplicate ContactNumber in Xero: {numbers}"
    active = [c["Name"].lower() for c in contacts.values() if c["ContactStatus"] == "ACTIVE"]
    assert len(active) == len(set(active)), f"duplicate active contact in Xero: {active}"
    invoice_numbers = [i["InvoiceNumber"] for i in org["invoices"].values()]
    assert len(invoice_numbers) == len(set(invoice_numbers)), (
        f"duplicate invoice in Xero: {invoice_numbers}"
    )
    for invoice in org["invoices"].values():
        assert invoice["ContactID"] in contacts, "an invoice exists before its contact"
    for link in XeroRecordLink.objects.all():
        assert link.tenant_id == DEMO_NZ_TENANT_ID
        store = contacts if link.content_type.model == "customer" else org["invoices"]
        assert link.xero_id in store, f"BMS links to a record Xero does not have: {link}"


def _assert_converged(machine: SyncMachine) -> None:
    org = machine.sandbox.org(DEMO_NZ_TENANT_ID)
    in_xero = {i["InvoiceNumber"] for i in org["invoices"].values()}
    for invoice in machine.invoices:
        job = (
            BackgroundJob.objects.filter(kind=JobKind.PUSH_INVOICE, target_object_id=invoice.pk)
            .order_by("-pk")
            .first()
        )
        if invoice.pk in machine.valid_invoices:
            assert invoice.number in in_xero and _linked(invoice), (
                f"valid invoice {invoice.number} did not reach Xero: "
                f"{job and (job.state, job.error_message)}"
            )
        elif invoice.number not in in_xero:
            assert job is not None and job.state == JobState.FAILED and job.error_message, (
                f"invalid invoice {invoice.number} has no recorded error"
            )


def _wipe() -> None:
    for model in (BackgroundJob, XeroRecordLink, Invoice, Customer):
        model.objects.all().delete()
    XeroEntityLink.objects.all().delete()
    XeroConnection.objects.all().delete()
    XeroAuthorisation.objects.all().delete()


def _run(
    engine_kind: str,
    sandbox: SandboxHandle,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    examples: int,
) -> None:
    if not redis_url:
        if IN_CI:
            pytest.fail("CI=true but BMS_TEST_REDIS_URL is not set")
        pytest.skip("needs Redis for the Xero rate limiter: set BMS_TEST_REDIS_URL")
    SyncMachine.sandbox = sandbox
    SyncMachine.engine = Engine(engine_kind)
    SyncMachine.redis_url = redis_url
    with engine_patched(SyncMachine.engine, monkeypatch):
        run_state_machine_as_test(
            SyncMachine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate]
                if engine_kind != "safe" or not SHRINK
                else [Phase.generate, Phase.shrink],
                derandomize=engine_kind != "safe" or IN_CI,
            ),
        )


@pytest.fixture
def sync_env(sandbox: SandboxHandle, settings: Any, redis_url: str) -> SandboxHandle:
    for name in ("XERO_API_BASE", "XERO_IDENTITY_BASE", "XERO_LOGIN_BASE"):
        setattr(settings, name, sandbox.url)
    settings.XERO_RATE_LIMIT_REDIS_URL = redis_url
    settings.XERO_RATE_LIMIT_PER_MINUTE = 1_000_000
    settings.XERO_RATE_LIMIT_APP_PER_MINUTE = 1_000_000
    return sandbox


@pytest.mark.django_db
def test_state_machine_sync_never_loses_or_duplicates(sync_env, redis_url, monkeypatch):
    _run("safe", sync_env, redis_url, monkeypatch, EXAMPLES)


@pytest.mark.django_db
@pytest.mark.parametrize("engine_kind", ["no_idempotency", "key_only"])
def test_state_machine_catches_a_broken_engine(sync_env, redis_url, monkeypatch, engine_kind):
    with pytest.raises(AssertionError):
        _run(engine_kind, sync_env, redis_url, monkeypatch, EXAMPLES)
