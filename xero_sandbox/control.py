"""The control API under /__sandbox__/ (JSON) - not part of Xero; for tests, demos and people.

Also "plays Xero's side": actions a Xero user would take in Xero's web app (apply a payment,
delete a payment, archive a contact) that BMS must discover through the API or webhooks.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import accounting, identity
from .accounting import Ctx
from .rules import ValidationFailure
from .seed import make_app, make_user
from .state import new_id
from .webhooks import intent_to_receive

if TYPE_CHECKING:
    from .server import Request, Sandbox

XERO_USER_APP = {"name": "Xero", "client_id": "__xero__"}

ROUTES = [
    "GET  /__sandbox__/                      this list",
    "POST /__sandbox__/reset                 {seed?: demo|empty, webhook_url?, redirect_uris?}",
    "GET  /__sandbox__/state                 full state (JSON)",
    "POST /__sandbox__/save | /load          {path?} persist to / load from the --data file",
    "GET  /__sandbox__/orgs                  organisations",
    (
        "POST /__sandbox__/orgs                  {name, tenant_id?, base_currency?, timezone?, "
        "country?, currencies?, user_ids?, period_lock_date?}"
    ),
    "POST /__sandbox__/orgs/{tenant}/lock-date   {date: YYYY-MM-DD | null}",
    (
        "POST /__sandbox__/orgs/{tenant}/payments    {InvoiceID|InvoiceNumber, Amount, "
        "AccountCode?, Date?, Reference?}"
    ),
    "POST /__sandbox__/orgs/{tenant}/payments/{PaymentID}/delete",
    "POST /__sandbox__/orgs/{tenant}/contacts/{ContactID}/archive",
    "GET  /__sandbox__/apps                  registered apps",
    (
        "POST /__sandbox__/apps                  {client_id, client_secret?, name?, "
        "redirect_uris?, webhook_url?, webhook_key?, auto_approve?, auto_approve_tenants?} "
        "(create or update)"
    ),
    "POST /__sandbox__/users                 {user_id?, email, name?, tenant_ids}",
    "GET  /__sandbox__/clock                 {now, time_scale}",
    "POST /__sandbox__/clock                 {advance_seconds?|set? (ISO)|time_scale?|reset?}",
    "GET  /__sandbox__/faults                armed faults",
    (
        "POST /__sandbox__/faults                {kind, route?, tenant_id?, count?, "
        "probability?, status?, retry_after?, problem?, delay?, revoke?}"
    ),
    "DELETE /__sandbox__/faults[/{id}]       clear one or all",
    "GET  /__sandbox__/limits                limits + current usage",
    (
        "POST /__sandbox__/limits                {enabled?, concurrent?, minute?, day?, "
        "app_minute?, reset_counters?}"
    ),
    (
        "GET  /__sandbox__/settings | POST       {auto_approve?, auto_approve_tenants?, "
        "invoice_update_on_payment?, webhooks_enabled?, webhook_retries?, validate_requests?, "
        "default_user_id?}"
    ),
    "GET  /__sandbox__/requests              request log ?since=<seq>&limit=<n>&bodies=1",
    "GET  /__sandbox__/rate-limited          every 429 the sandbox produced",
    (
        "POST /__sandbox__/disconnect            {tenant_id, client_id?, revoke?} (Xero-side "
        "disconnect)"
    ),
    "POST /__sandbox__/webhooks/config       {client_id, url?, key?}",
    "POST /__sandbox__/webhooks/itr          {client_id} run Intent to Receive",
    "GET  /__sandbox__/webhooks/deliveries   delivery attempts",
    "GET  /__sandbox__/ui/                   read-only HTML views",
]


def plain(value: Any) -> Any:
    """State as readable JSON: Decimal -> string, dates -> ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    return value


def _reply(status: int, payload: Any) -> identity.HttpReply:
    return identity.HttpReply.json(status, plain(payload))


def xero_ctx(sb: Sandbox, tenant_id: str) -> Ctx:
    org = sb.state.org(tenant_id)
    if org is None:
        raise KeyError(tenant_id)
    return Ctx(sb.state, org, tenant_id, XERO_USER_APP, sb.clock.now(), {}, {})


def apply_payment(
    sb: Sandbox,
    tenant_id: str,
    *,
    amount: Any,
    invoice_id: str | None = None,
    invoice_number: str | None = None,
    account_code: str = "090",
    payment_date: date | str | None = None,
    reference: str = "",
) -> dict[str, Any]:
    """A Xero user records a payment in Xero's UI. Raises ValidationFailure like the API."""
    with sb.state.lock:
        ctx = xero_ctx(sb, tenant_id)
        when = (
            payment_date.isoformat()
            if isinstance(payment_date, date)
            else (payment_date or ctx.today().isoformat())
        )
        element = {
            "Invoice": {"InvoiceID": invoice_id, "InvoiceNumber": invoice_number},
            "Account": {"Code": account_code},
            "Amount": Decimal(str(amount)),
            "Date": when,
            "Reference": reference,
        }
        payment = accounting.payment_create(ctx, element)
        sb.save()
    sb.webhooks.emit(tenant_id, ctx.events)
    return payment


def delete_payment(sb: Sandbox, tenant_id: str, payment_id: str) -> dict[str, Any]:
    with sb.state.lock:
        ctx = xero_ctx(sb, tenant_id)
        payment = ctx.org["payments"].get(payment_id)
        if payment is None:
            raise KeyError(payment_id)
        result = accounting.payment_delete(ctx, payment, {"Status": "DELETED"})
        sb.save()
    sb.webhooks.emit(tenant_id, ctx.events)
    return result


def archive_contact(sb: Sandbox, tenant_id: str, contact_id: str) -> dict[str, Any]:
    with sb.state.lock:
        ctx = xero_ctx(sb, tenant_id)
        contact = ctx.org["contacts"].get(contact_id)
        if contact is None:
            raise KeyError(contact_id)
        result = accounting.contact_apply(ctx, {"ContactStatus": "ARCHIVED"}, contact)
        sb.save()
    sb.webhooks.emit(tenant_id, ctx.events)
    return result


def upsert_app(sb: Sandbox, spec: dict[str, Any]) -> dict[str, Any]:
    client_id = spec.get("client_id")
    if not client_id:
        raise ValueError("client_id is required")
    with sb.state.lock:
        app = sb.state.apps.get(client_id)
        if app is None:
            app = make_app(
                client_id,
                spec.get("client_secret") or new_id(),
                name=spec.get("name") or client_id,
                redirect_uris=spec.get("redirect_uris") or [],
            )
            sb.state.apps[client_id] = app
        for key in (
            "client_secret",
            "name",
            "redirect_uris",
            "webhook_url",
            "webhook_key",
            "auto_approve",
            "auto_approve_tenants",
        ):
            if key in spec:
                app[key] = spec[key]
        return dict(app)


def _org_summary(org: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": org["tenant_id"],
        "name": org["organisation"]["Name"],
        "base_currency": org["organisation"]["BaseCurrency"],
        "timezone": org["timezone"],
        "currencies": org["currencies"],
        "period_lock_date": org.get("period_lock_date"),
        "counts": {
            k: len(org[k])
            for k in ("contacts", "invoices", "payments", "credit_notes", "manual_journals")
        },
    }


def handle(sb: Sandbox, req: Request) -> identity.HttpReply:
    parts = [p for p in req.path.split("/") if p][1:]  # drop "__sandbox__"
    if parts and parts[0] == "ui":
        from . import ui  # noqa: PLC0415 - ui imports this module (the Xero-side actions)

        return ui.handle(sb, req, parts[1:])
    try:
        body = json.loads(req.body.decode("utf-8")) if req.body.strip() else {}
    except ValueError:
        return _reply(400, {"error": "body must be JSON"})
    if not isinstance(body, dict):
        return _reply(400, {"error": "body must be a JSON object"})
    try:
        reply = _route(sb, req, parts, body)
        if req.method in {"POST", "DELETE"} and reply.status < 400 and parts[:1] != ["load"]:
            sb.save()  # keep --data in step with control changes too
        return reply
    except ValidationFailure as failure:
        return _reply(400, {"error": "validation", "messages": failure.messages})
    except KeyError as exc:
        return _reply(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})
    except (ValueError, TypeError) as exc:
        return _reply(400, {"error": str(exc)})


def _route(sb: Sandbox, req: Request, parts: list[str], body: dict[str, Any]) -> identity.HttpReply:  # noqa: C901, PLR0911, PLR0912
    method = req.method
    state = sb.state
    head = parts[0] if parts else ""
    if not parts and method == "GET":
        return _reply(200, {"routes": ROUTES})
    if head == "reset" and method == "POST":
        options = {k: body[k] for k in ("webhook_url", "redirect_uris") if k in body}
        sb.reset(body.get("seed"), **options)
        return _reply(200, {"ok": True})
    if head == "state" and method == "GET":
        return _reply(200, state.snapshot())
    if head in {"save", "load"} and method == "POST":
        path = Path(body["path"]) if body.get("path") else state.data_file
        if path is None:
            return _reply(400, {"error": "no --data file configured and no path given"})
        if head == "save":
            state.save(path)
        else:
            state.load(path)
            sb.limiter.reset(state.limits)
        return _reply(200, {"ok": True, "path": str(path)})
    if head == "orgs":
        if len(parts) == 1 and method == "GET":
            with state.lock:
                return _reply(200, [_org_summary(o) for o in state.orgs.values()])
        if len(parts) == 1 and method == "POST":
            return _reply(200, sb.seed_org(**body))
        tenant_id = parts[1]
        if state.org(tenant_id) is None:
            raise KeyError(tenant_id)
        if parts[2:] == ["lock-date"] and method == "POST":
            value = body.get("date")
            with state.lock:
                state.orgs[tenant_id]["period_lock_date"] = (
                    date.fromisoformat(value) if value else None
                )
            return _reply(200, {"ok": True})
        if parts[2:] == ["payments"] and method == "POST":
            payment = apply_payment(
                sb,
                tenant_id,
                amount=body["Amount"],
                invoice_id=body.get("InvoiceID"),
                invoice_number=body.get("InvoiceNumber"),
                account_code=body.get("AccountCode", "090"),
                payment_date=body.get("Date"),
                reference=body.get("Reference", ""),
            )
            return _reply(200, payment)
        if len(parts) == 5 and parts[2] == "payments" and parts[4] == "delete" and method == "POST":
            return _reply(200, delete_payment(sb, tenant_id, parts[3]))
        if (
            len(parts) == 5
            and parts[2] == "contacts"
            and parts[4] == "archive"
            and method == "POST"
        ):
            return _reply(200, archive_contact(sb, tenant_id, parts[3]))
    if head == "apps":
        if method == "GET":
            return _reply(200, list(state.apps.values()))
        if method == "POST":
            return _reply(200, upsert_app(sb, body))
    if head == "users" and method == "POST":
        user = make_user(
            body.get("user_id") or new_id(),
            body["email"],
            body.get("name", "Sandbox User"),
            body.get("tenant_ids", []),
        )
        with state.lock:
            state.data["users"][user["user_id"]] = user
        return _reply(200, user)
    if head == "clock":
        if method == "POST":
            if body.get("reset"):
                sb.clock.reset()
            if "time_scale" in body:
                sb.clock.set_scale(float(body["time_scale"]))
            if "set" in body:
                sb.clock.set(datetime.fromisoformat(str(body["set"])))
            if "advance_seconds" in body:
                sb.clock.advance(float(body["advance_seconds"]))
        return _reply(200, {"now": sb.clock.now(), "time_scale": sb.clock.scale})
    if head == "faults":
        if method == "GET":
            return _reply(200, sb.faults.list())
        if method == "POST":
            return _reply(200, sb.faults.add(**body).to_dict())
        if method == "DELETE":
            sb.faults.clear(parts[1] if len(parts) > 1 else None)
            return _reply(200, {"ok": True})
    if head == "limits":
        if method == "POST":
            reset_counters = body.pop("reset_counters", False)
            sb.set_limits(**body)
            if reset_counters:
                sb.reset_limit_counters()
        return _reply(200, {"limits": state.limits, "usage": sb.limiter.usage()})
    if head == "settings":
        if method == "POST":
            with state.lock:
                state.settings.update(body)
        return _reply(200, state.settings)
    if head == "requests" and method == "GET":
        since = int(req.query.get("since") or 0)
        limit = int(req.query.get("limit") or 1000)
        bodies = req.query.get("bodies") in {"1", "true", "True"}
        with state.lock:
            entries = [e for e in state.request_log if e["seq"] > since][-limit:]
        if not bodies:
            entries = [{k: v for k, v in e.items() if k != "response_body"} for e in entries]
        return _reply(200, entries)
    if head == "rate-limited" and method == "GET":
        with state.lock:
            return _reply(
                200,
                [{k: v for k, v in e.items() if k != "response_body"} for e in state.rate_limited],
            )
    if head == "disconnect" and method == "POST":
        removed = sb.disconnect(
            tenant_id=body["tenant_id"],
            client_id=body.get("client_id"),
            revoke=bool(body.get("revoke")),
        )
        return _reply(200, {"removed": removed})
    if head == "webhooks":
        sub = parts[1] if len(parts) > 1 else ""
        if sub == "config" and method == "POST":
            spec = {"client_id": body["client_id"]}
            if "url" in body:
                spec["webhook_url"] = body["url"]
            if "key" in body:
                spec["webhook_key"] = body["key"]
            return _reply(200, upsert_app(sb, spec))
        if sub == "itr" and method == "POST":
            app = state.apps[body["client_id"]]
            if not app.get("webhook_url"):
                return _reply(400, {"error": "the app has no webhook_url"})
            return _reply(200, intent_to_receive(app["webhook_url"], app["webhook_key"]))
        if sub == "deliveries" and method == "GET":
            with state.lock:
                return _reply(200, list(state.webhook_deliveries))
    return _reply(404, {"error": f"no control route {method} /__sandbox__/{'/'.join(parts)}"})
