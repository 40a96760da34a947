"""The sandbox core (`Sandbox`) and its HTTP front (stdlib ThreadingHTTPServer).

One port serves every Xero host the product talks to:
* API       /api.xro/2.0/..., /connections (and /Connections)
* identity  /connect/token, /connect/revocation
* login     /identity/connect/authorize
* control   /__sandbox__/... (JSON) and /__sandbox__/ui/... (HTML)

Gateway order for an accounting call, mirroring where Xero's layers sit: Xero-side disconnect
fault -> bearer token (401) -> tenant connection (403) -> rate limits (429) -> gateway faults
(slow, 503, 429) -> Idempotency-Key -> injected 500 -> body shape (PostDataInvalidException) ->
business rules -> commit_then_drop. Errors produced inside the Idempotency-Key scope (500s,
validation errors) are replayed for the same key, as Xero documents (xero-api-notes.md §3).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import accounting, control, identity, spec
from .clock import Clock
from .faults import FaultSet
from .idempotency import MAX_KEY_LENGTH, IdempotencyStore, fingerprint
from .identity import HttpReply
from .jsonutil import dumps, loads_request
from .limits import RateLimiter
from .seed import SEEDS, build_org
from .state import DEFAULT_LIMITS, State
from .webhooks import WebhookDispatcher

log = logging.getLogger("xero_sandbox")
API_PREFIX = "/api.xro/2.0"
MUTATING = {"PUT", "POST", "PATCH"}


@dataclass
class Request:
    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(
        default_factory=dict
    )  # lower-cased keys (Xero is case-insensitive)
    params: dict[str, str] = field(default_factory=dict)  # original keys

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        parts = urlsplit(target)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return cls(
            method.upper(),
            unquote(parts.path),
            parts.query,
            headers,
            body,
            {k.lower(): v for k, v in params.items()},
            params,
        )


def json_reply(status: int, payload: Any) -> HttpReply:
    return HttpReply(
        status, dumps(payload).encode("utf-8"), {"Content-Type": "application/json; charset=utf-8"}
    )


class Sandbox:
    """Everything except HTTP: state, clock, limits, faults, idempotency, webhooks."""

    def __init__(
        self,
        *,
        seed: str | None = "demo",
        clock: Clock | None = None,
        data_file: Path | None = None,
        webhook_url: str | None = None,
        redirect_uris: list[str] | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.state = State(self.clock)
        self.seed_name = seed
        self.seed_options: dict[str, Any] = {}
        if webhook_url is not None:
            self.seed_options["webhook_url"] = webhook_url or None
        if redirect_uris:
            self.seed_options["redirect_uris"] = redirect_uris
        self.faults = FaultSet()
        self.limiter = RateLimiter(self.clock, self.state.limits)
        self.idempotency = IdempotencyStore(self.clock)
        self.webhooks = WebhookDispatcher(self.state)
        self.state.data_file = data_file
        if data_file is not None and data_file.exists():
            self.state.load(data_file)
            self.limiter.reset(self.state.limits)
        else:
            self.reset(seed)

    # --- state management -------------------------------------------------------------------------
    def reset(self, seed: str | None = None, **options: Any) -> None:
        """Fresh state from a seed ("demo" or "empty"); clears faults, limits, logs and keys."""
        name = seed if seed is not None else (self.seed_name or "empty")
        if name not in SEEDS:
            raise ValueError(f"unknown seed {name!r}; expected one of {sorted(SEEDS)}")
        builder = SEEDS[name]
        opts = {**self.seed_options, **options} if name == "demo" else {}
        self.state.replace(builder(self.clock.now(), **opts))
        self.faults.clear()
        self.limiter.reset(self.state.limits)
        self.idempotency.reset()

    def seed_org(
        self,
        *,
        name: str,
        tenant_id: str | None = None,
        base_currency: str = "NZD",
        timezone: str = "Pacific/Auckland",
        country: str = "NZ",
        currencies: list[str] | None = None,
        user_ids: list[str] | None = None,
        period_lock_date: Any = None,
    ) -> dict[str, Any]:
        """Add an organisation (standard chart and tax rates) and give users access to it."""
        lock = (
            date.fromisoformat(period_lock_date)
            if isinstance(period_lock_date, str)
            else period_lock_date
        )
        with self.state.lock:
            org = build_org(
                name=name,
                now=self.clock.now(),
                base_currency=base_currency,
                timezone=timezone,
                country=country,
                tenant_id=tenant_id,
                currencies=currencies,
                period_lock_date=lock,
            )
            self.state.orgs[org["tenant_id"]] = org
            users = self.state.data["users"]
            for user_id in user_ids if user_ids is not None else list(users):
                if user_id in users and org["tenant_id"] not in users[user_id]["tenant_ids"]:
                    users[user_id]["tenant_ids"].append(org["tenant_id"])
        return {"tenant_id": org["tenant_id"], "name": name}

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        with self.state.lock:
            unknown = set(limits) - set(DEFAULT_LIMITS)
            if unknown:
                raise ValueError(f"unknown limits {sorted(unknown)}")
            self.state.limits.update(limits)
            self.limiter.config = self.state.limits
            return dict(self.state.limits)

    def reset_limit_counters(self) -> None:
        self.limiter.reset(self.state.limits)

    def disconnect(
        self, *, tenant_id: str, client_id: str | None = None, revoke: bool = False
    ) -> int:
        """Xero-side disconnect: remove the tenant's connections (optionally revoke tokens)."""
        removed = 0
        with self.state.lock:
            for connection in list(self.state.data["connections"].values()):
                if connection["tenantId"] == tenant_id and client_id in (
                    None,
                    connection["client_id"],
                ):
                    identity.remove_connection(self.state, connection["id"], revoke=revoke)
                    removed += 1
        return removed

    def save(self) -> None:
        if self.state.data_file is not None:
            self.state.save()

    def stop(self) -> None:
        self.webhooks.stop()

    # --- request entry point ----------------------------------------------------------------------
    def handle(self, req: Request) -> HttpReply:
        path = req.path
        lowered = path.lower()
        if lowered.startswith("/__sandbox__"):
            return control.handle(self, req)
        if lowered.startswith("/identity/connect/authorize") and req.method in {"GET", "POST"}:
            reply = identity.authorize(self.state, req.method, req.params, req.body)
            self.save()  # codes and connections survive a restart with --data
            return reply
        if lowered == "/connect/token" and req.method == "POST":
            return self._with_plain_faults(
                req, lambda: identity.token(self.state, req.headers, req.body)
            )
        if lowered == "/connect/revocation" and req.method == "POST":
            return self._with_plain_faults(
                req, lambda: identity.revocation(self.state, req.headers, req.body)
            )
        if lowered == "/connections" or lowered.startswith("/connections/"):
            return self._connections(req)
        if lowered == API_PREFIX.lower() or lowered.startswith(API_PREFIX.lower() + "/"):
            return self._accounting(req)
        return json_reply(
            404,
            {
                "Title": "NotFound",
                "Status": 404,
                "Detail": "The resource you're looking for cannot be found",
            },
        )

    # --- gateway pieces ---------------------------------------------------------------------------
    def _log(self, req: Request, reply: HttpReply, **fields: Any) -> None:
        entry = {
            "time": self.clock.now().isoformat(),
            "method": req.method,
            "path": req.path,
            "query": req.raw_query,
            "status": reply.status,
            "tenant_id": req.headers.get("xero-tenant-id"),
            "idempotency_key": req.headers.get("idempotency-key"),
            "rate_limited": reply.status == 429,
            "dropped": reply.drop,
            **fields,
        }
        if fields.get("keep_body"):
            entry["response_body"] = reply.body.decode("utf-8", "replace")
        entry.pop("keep_body", None)
        self.state.log_request(entry)

    def _gateway_faults(
        self, req: Request, rel: str, tenant_id: str | None
    ) -> tuple[HttpReply | None, str | None]:
        slow = self.faults.take(req.method, rel, tenant_id, {"slow"})
        if slow is not None:
            time.sleep(slow.delay)
        fault = self.faults.take(req.method, rel, tenant_id, {"rate_limit"})
        if fault is not None:
            reply = json_reply(429, {"Title": "Too Many Requests", "Status": 429})
            reply.headers.update(
                {"Retry-After": str(fault.retry_after), "X-Rate-Limit-Problem": fault.problem}
            )
            return reply, "rate_limit"
        error = self.faults.take(req.method, rel, tenant_id, {"error"})
        if error is not None and error.status != 500:
            return _error_reply(error.status), f"error:{error.status}"
        if error is not None:
            return _error_reply(500), "error:500"
        return None, ("slow" if slow else None)

    def _with_plain_faults(self, req: Request, run: Any) -> HttpReply:
        reply, fault = self._gateway_faults(req, req.path, None)
        if reply is None:
            reply = run()
            self.save()
            if self.faults.take(req.method, req.path, None, {"commit_then_drop"}):
                reply.drop = True
                fault = "commit_then_drop"
        self._log(req, reply, fault=fault, operation=req.path, keep_body=reply.status < 500)
        return reply

    def _connections(self, req: Request) -> HttpReply:
        with self.state.lock:
            token_record, error = identity.authenticate(self.state, req.headers)
        if error is not None or token_record is None:
            assert error is not None
            self._log(req, error, operation="connections")
            return error
        decision = self.limiter.app_only(token_record["client_id"])
        if not decision.allowed:
            reply = json_reply(429, {"Title": "Too Many Requests", "Status": 429})
            reply.headers.update(
                {
                    "Retry-After": str(decision.retry_after),
                    "X-Rate-Limit-Problem": decision.problem or "appminute",
                }
            )
        else:
            faulted, _fault = self._gateway_faults(req, req.path, None)
            reply = faulted or self._connections_inner(req, token_record)
        # Tenantless responses carry X-AppMinLimit-Remaining only (notes §1, xero-ruby#128).
        reply.headers.update(decision.headers or {})
        operation = "getConnections" if req.method == "GET" else "deleteConnection"
        self._log(
            req,
            reply,
            operation=operation,
            client_id=token_record["client_id"],
            keep_body=req.method == "GET" and reply.status == 200,
        )
        return reply

    def _connections_inner(self, req: Request, token_record: dict[str, Any]) -> HttpReply:
        parts = [p for p in req.path.split("/") if p]
        with self.state.lock:
            if req.method == "GET" and len(parts) == 1:
                items = identity.list_connections(
                    self.state, token_record, req.query.get("autheventid")
                )
                return HttpReply.json(200, items)
            if req.method == "DELETE" and len(parts) == 2:
                connection = self.state.data["connections"].get(parts[1])
                if (
                    connection is None
                    or connection["client_id"] != token_record["client_id"]
                    or connection["user_id"] != token_record["user_id"]
                ):
                    return json_reply(
                        404, {"Title": "NotFound", "Status": 404, "Detail": "Connection not found"}
                    )
                identity.remove_connection(self.state, parts[1])
                self.save()
                return HttpReply(204)
        return json_reply(404, {"Title": "NotFound", "Status": 404, "Detail": "Not found"})

    def _accounting(self, req: Request) -> HttpReply:
        rel = req.path[len(API_PREFIX) :] or "/"
        tenant_id = (req.headers.get("xero-tenant-id") or "").strip() or None
        operation = spec.find_operation(req.method, rel)
        op_id = operation.operation_id if operation else None

        disconnect = self.faults.take(req.method, rel, tenant_id, {"disconnect"})
        if disconnect is not None and tenant_id:
            with self.state.lock:
                record = self.state.data["access_tokens"].get(
                    req.headers.get("authorization", "")[7:].strip()
                )
                self.disconnect(
                    tenant_id=tenant_id,
                    client_id=record["client_id"] if record else None,
                    revoke=disconnect.revoke,
                )

        with self.state.lock:
            token_record, error = identity.authenticate(self.state, req.headers)
            if error is None and token_record is not None:
                connected = any(
                    c["tenantId"] == tenant_id
                    for c in self.state.connections_for(
                        token_record["client_id"], token_record["user_id"]
                    )
                )
                if not tenant_id or not connected or self.state.org(tenant_id) is None:
                    # Detail seen only in third-party fixtures (notes §2): not confirmed.
                    error = identity.problem(403, "Forbidden", "AuthenticationUnsuccessful")
        if error is not None or token_record is None:
            assert error is not None
            self._log(req, error, operation=op_id)
            return error
        client_id = token_record["client_id"]
        assert tenant_id is not None

        decision = self.limiter.acquire(client_id, tenant_id)
        if not decision.allowed:
            reply = json_reply(429, {"Title": "Too Many Requests", "Status": 429})
            reply.headers.update(decision.headers or {})
            reply.headers.update(
                {
                    "Retry-After": str(decision.retry_after),
                    "X-Rate-Limit-Problem": decision.problem or "minute",
                }
            )
            self._log(
                req,
                reply,
                operation=op_id,
                client_id=client_id,
                problem=decision.problem,
                retry_after=decision.retry_after,
            )
            return reply
        replayed = False
        fault_name: str | None = None
        try:
            faulted, fault_name = self._gateway_faults(req, rel, tenant_id)
            if faulted is not None and fault_name != "error:500":
                reply = faulted
            else:
                reply, replayed, fault_name = self._idempotent(
                    req, rel, tenant_id, client_id, token_record, operation, fault_name
                )
            if self.faults.take(req.method, rel, tenant_id, {"commit_then_drop"}) is not None:
                reply.drop = True
                fault_name = "commit_then_drop"
            reply.headers.update(decision.headers or {})
        finally:
            self.limiter.release(decision.slot)
        self._log(
            req,
            reply,
            operation=op_id,
            client_id=client_id,
            fault=fault_name,
            replayed=replayed,
            keep_body=True,
        )
        return reply

    def _idempotent(
        self,
        req: Request,
        rel: str,
        tenant_id: str,
        client_id: str,
        token_record: dict[str, Any],
        operation: spec.Operation | None,
        fault_name: str | None,
    ) -> tuple[HttpReply, bool, str | None]:
        key = req.headers.get("idempotency-key")
        if req.method not in MUTATING or not key:
            return (
                self._run(req, rel, tenant_id, client_id, operation, fault_name),
                False,
                fault_name,
            )
        if len(key) > MAX_KEY_LENGTH:
            # Not confirmed where Xero puts this; top-level Message of a ValidationException.
            return (
                json_reply(
                    400,
                    {
                        "ErrorNumber": 10,
                        "Type": "ValidationException",
                        "Message": (
                            f"Idempotency Key: {key} exceeds the maximum length of 128 characters."
                        ),
                        "Elements": [],
                    },
                ),
                False,
                fault_name,
            )
        print_ = fingerprint(req.method, req.path.lower(), req.raw_query, tenant_id, req.body)
        outcome, entry = self.idempotency.begin(client_id, key, print_)
        if outcome == "mismatch":
            # xero-api-notes.md §3: text from third-party tests; placement not confirmed.
            return (
                json_reply(
                    400,
                    {
                        "ErrorNumber": 10,
                        "Type": "ValidationException",
                        "Message": f"Idempotency Key: {key} is used with a different request.",
                        "Elements": [],
                    },
                ),
                False,
                fault_name,
            )
        if outcome == "replay" and entry.response is not None:
            status, body, headers = entry.response
            return HttpReply(status, body, dict(headers)), True, fault_name
        try:
            reply = self._run(req, rel, tenant_id, client_id, operation, fault_name)
        except BaseException:
            self.idempotency.abandon(client_id, key, entry)
            raise
        self.idempotency.finish(entry, (reply.status, reply.body, dict(reply.headers)))
        return reply, False, fault_name

    def _run(
        self,
        req: Request,
        rel: str,
        tenant_id: str,
        client_id: str,
        operation: spec.Operation | None,
        fault_name: str | None,
    ) -> HttpReply:
        if fault_name == "error:500":
            return _error_reply(500)
        body: Any = None
        if req.method in MUTATING:
            try:
                body = loads_request(req.body) if req.body.strip() else None
            except (ValueError, UnicodeDecodeError) as exc:
                return post_data_invalid(
                    f"Unexpected character encountered while parsing value: {exc}"
                )
            if (
                operation is not None
                and body is not None
                and self.state.settings.get("validate_requests", True)
            ):
                problems = spec.request_errors(operation, _for_schema(body))
                if problems:
                    return post_data_invalid(problems[0])
        events: list[tuple[str, str, str]] = []
        with self.state.lock:
            org = self.state.org(tenant_id)
            app = self.state.apps[client_id]
            assert org is not None
            ctx = accounting.Ctx(
                self.state, org, tenant_id, app, self.clock.now(), req.query, req.headers
            )
            try:
                status, payload = accounting.dispatch(ctx, req.method, rel, body)
            except accounting.NotFound:
                return json_reply(
                    404,
                    {
                        "Title": "NotFound",
                        "Status": 404,
                        "Detail": "The resource you're looking for cannot be found",
                    },
                )
            except accounting.BadQuery as exc:
                return json_reply(
                    400, {"ErrorNumber": 16, "Type": "QueryParseException", "Message": str(exc)}
                )
            events = ctx.events
            if req.method in MUTATING:
                self.save()
        self.webhooks.emit(tenant_id, events)
        return json_reply(status, payload)


def _for_schema(body: Any) -> Any:
    """jsonschema sees Decimal as a number only via float; convert for validation only."""
    from decimal import Decimal  # noqa: PLC0415

    if isinstance(body, Decimal):
        return float(body)
    if isinstance(body, dict):
        return {k: _for_schema(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_for_schema(v) for v in body]
    return body


def post_data_invalid(detail: str) -> HttpReply:
    # xero-api-notes.md §2 (xero-php-oauth2#38): ErrorNumber 14, message prefix verbatim.
    return json_reply(
        400,
        {
            "ErrorNumber": 14,
            "Type": "PostDataInvalidException",
            "Message": f"JSON for post data was invalid,{detail}",
        },
    )


def _error_reply(status: int) -> HttpReply:
    if status == 503:
        return json_reply(
            503,
            {
                "Title": "Service Unavailable",
                "Status": 503,
                "Detail": "The Xero API is temporarily unavailable",
            },
        )
    return json_reply(
        status,
        {
            "ErrorNumber": 500,
            "Type": "UnknownErrorException" if status == 500 else "Error",
            "Message": (
                "An error occurred in Xero. Check the API Status page "
                "http://status.developer.xero.com for current service status."
            ),
        },
    )


# --- HTTP -----------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK
        # add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request.build(self.command, self.path, headers, body)
        try:
            reply = self.server.sandbox.handle(req)
        except Exception:
            log.exception("sandbox error on %s %s", self.command, self.path)
            reply = _error_reply(500)
        if reply.drop:
            # "commit then drop": the change is applied, the client never sees a reply.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, Handler)


def serve_in_thread(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0
) -> tuple[SandboxHTTPServer, threading.Thread]:
    server = SandboxHTTPServer((host, port), sandbox)
    thread = threading.Thread(target=server.serve_forever, name="xero-sandbox-http", daemon=True)
    thread.start()
    return server, thread


__all__ = ["Request", "Sandbox", "SandboxHTTPServer", "serve_in_thread"]
