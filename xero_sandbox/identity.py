"""Xero identity: consent page, token endpoint, revocation, connections, bearer checks.

Sources: xero-api-notes.md §5 and reliability-notes.md §4.
* authorization codes are single use and expire after 5 minutes; PKCE (S256) is checked;
* access tokens live 30 minutes (expires_in 1800) and look like JWTs (HS256-signed with a
  sandbox key; real ones are RS256) carrying `authentication_event_id`, as Xero's do;
* refresh tokens rotate on every use and expire 60 days after issue. The previous refresh token
  stays usable for a 30-minute grace period, as many times as needed. Choice (documented): a
  refresh token used during its grace period returns the SAME successor refresh token it was
  first rotated to, with a freshly issued access token - so a client whose reply was lost ends
  up with the one live token chain;
* anything else: 400 with exactly `{"error":"invalid_grant"}` (the SDK's identity exception
  handler compares that exact text, notes §5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, urlencode

from .jsonutil import iso_utc
from .state import State, new_id

ACCESS_TOKEN_SECONDS = 1800
REFRESH_TOKEN_DAYS = 60
REFRESH_GRACE = timedelta(minutes=30)
CODE_SECONDS = 300
ID_TOKEN_SECONDS = 300
SIGNING_KEY = b"xero-sandbox-signing-key"
INVALID_GRANT = b'{"error":"invalid_grant"}'


class HttpReply:
    """A minimal reply the server writes out (status, headers, body)."""

    def __init__(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.drop = False

    @classmethod
    def json(cls, status: int, payload: Any) -> HttpReply:
        return cls(
            status,
            json.dumps(payload, separators=(",", ":")).encode(),
            {"Content-Type": "application/json; charset=utf-8"},
        )

    @classmethod
    def html(cls, status: int, text: str) -> HttpReply:
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, location: str) -> HttpReply:
        return cls(302, b"", {"Location": location})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "kid": "xero-sandbox", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(SIGNING_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """Helper for tests and clients: the (unverified) claims of a sandbox JWT."""
    payload = token.split(".")[1]
    return cast(
        dict[str, Any], json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    )


def problem(status: int, title: str, detail: str) -> HttpReply:
    """The OAuth2 gateway's JSON (notes §2): {"Type":null,"Title":...,"Detail":...}."""
    reply = HttpReply.json(
        status,
        {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        },
    )
    if status == 401:
        reply.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return reply


# --- consent page ---------------------------------------------------------------------------------


def _error_page(message: str) -> HttpReply:
    return HttpReply.html(
        400,
        f"""<!doctype html><html><head><title>Xero sandbox - error</title></head>
<body><h1>Sorry, something went wrong</h1><p id="error">{html.escape(message)}</p></body></html>""",
    )


def _with_query(uri: str, params: dict[str, str | None]) -> str:
    return (
        uri
        + ("&" if "?" in uri else "?")
        + urlencode({k: v for k, v in params.items() if v is not None})
    )


def _validate_authorize(
    state: State, params: dict[str, str]
) -> tuple[dict[str, Any] | None, HttpReply | None]:
    app = state.apps.get(params.get("client_id", ""))
    if app is None:
        return None, _error_page("unauthorized_client: Unknown client or client not enabled")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in app["redirect_uris"]:
        # Exact match, never redirect to an unregistered URI (RFC 9700 §4.1).
        return None, _error_page(
            "Invalid redirect_uri: it must exactly match one registered for the app"
        )
    if params.get("response_type") != "code":
        return None, HttpReply.redirect(
            _with_query(
                redirect_uri,
                {"error": "unsupported_response_type", "state": params.get("state", "")},
            )
        )
    if not params.get("scope"):
        return None, HttpReply.redirect(
            _with_query(redirect_uri, {"error": "invalid_scope", "state": params.get("state", "")})
        )
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and method not in (None, "", "S256"):
        return None, HttpReply.redirect(
            _with_query(
                redirect_uri, {"error": "invalid_request", "state": params.get("state", "")}
            )
        )
    return app, None


def _current_user(state: State, params: dict[str, str]) -> dict[str, Any] | None:
    users = state.data["users"]
    wanted = params.get("login_hint") or state.settings.get("default_user_id")
    for user in users.values():
        if wanted in {user["user_id"], user["email"]}:
            return cast(dict[str, Any], user)
    return next(iter(users.values()), None)


def _grant_code(
    state: State,
    app: dict[str, Any],
    user: dict[str, Any],
    tenant_ids: list[str],
    params: dict[str, str],
) -> HttpReply:
    """Consent given: connections are created (or refreshed) now, under a new auth event."""
    now = state.now()
    auth_event_id = new_id()
    for tenant_id in tenant_ids:
        existing = next(
            (
                c
                for c in state.connections_for(app["client_id"], user["user_id"])
                if c["tenantId"] == tenant_id
            ),
            None,
        )
        if existing:
            existing["authEventId"] = auth_event_id
            existing["updatedDateUtc"] = now
        else:
            connection_id = new_id()
            state.data["connections"][connection_id] = {
                "id": connection_id,
                "authEventId": auth_event_id,
                "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
                "client_id": app["client_id"],
                "user_id": user["user_id"],
                "createdDateUtc": now,
                "updatedDateUtc": now,
            }
    code = secrets.token_urlsafe(24)
    state.data["auth_codes"][code] = {
        "client_id": app["client_id"],
        "user_id": user["user_id"],
        "scope": params.get("scope", ""),
        "redirect_uri": params.get("redirect_uri", ""),
        "code_challenge": params.get("code_challenge"),
        "created": now,
        "used": False,
        "auth_event_id": auth_event_id,
        "grant_id": None,
    }
    return HttpReply.redirect(
        _with_query(params["redirect_uri"], {"code": code, "state": params.get("state")})
    )


def authorize(state: State, method: str, query: dict[str, str], body: bytes) -> HttpReply:
    params = dict(query)
    form: dict[str, list[str]] = {}
    if method == "POST":
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        params.update({k: v[0] for k, v in form.items() if k != "tenant"})
    with state.lock:
        app, error = _validate_authorize(state, params)
        if error is not None or app is None:
            return error or _error_page("invalid request")
        user = _current_user(state, params)
        if user is None:
            return _error_page("No sandbox user exists; seed one through the control API")
        allowed = list(user["tenant_ids"])
        auto = app.get("auto_approve") or state.settings.get("auto_approve")
        if method == "GET" and auto:
            wanted = app.get("auto_approve_tenants") or state.settings.get("auto_approve_tenants")
            tenants = [t for t in (wanted or allowed) if t in allowed]
            return _grant_code(state, app, user, tenants, params)
        if method == "POST":
            if params.get("action") == "cancel":
                return HttpReply.redirect(
                    _with_query(
                        params["redirect_uri"],
                        {"error": "access_denied", "state": params.get("state")},
                    )
                )
            chosen = [t for t in form.get("tenant", []) if t in allowed]
            if chosen:
                return _grant_code(state, app, user, chosen, params)
        return _consent_page(state, app, user, params, error=method == "POST")


def _consent_page(
    state: State, app: dict[str, Any], user: dict[str, Any], params: dict[str, str], *, error: bool
) -> HttpReply:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k not in {"action"}
    )
    rows = []
    for tenant_id in user["tenant_ids"]:
        org = state.org(tenant_id)
        if org is None:
            continue
        name = html.escape(org["organisation"]["Name"])
        rows.append(
            f'<li><label><input type="checkbox" name="tenant" value="{tenant_id}" checked> {name}'
            f" <small>({org['organisation']['BaseCurrency']})</small></label></li>"
        )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in params.get("scope", "").split())
    warning = '<p class="error">Select at least one organisation.</p>' if error else ""
    return HttpReply.html(
        200,
        f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Xero sandbox - connect {html.escape(app["name"])}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}} .error{{color:#b00}}
button{{padding:.5em 1.5em;margin-right:1em}}</style></head>
<body><h1>{html.escape(app["name"])} wants access to your Xero data</h1>
<p>Signed in as {html.escape(user["email"])} (Xero sandbox).</p>
<form method="post" action="/identity/connect/authorize">{hidden}
<h2>Organisations</h2>{warning}<ul>{"".join(rows)}</ul>
<h2>Permissions requested</h2><ul>{scopes}</ul>
<button type="submit" name="action" value="allow" id="allow">Allow access</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
</form></body></html>""",
    )


# --- token endpoint -------------------------------------------------------------------------------


def _client_credentials(
    headers: dict[str, str], form: dict[str, str]
) -> tuple[str | None, str | None]:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")


def _issue_tokens(state: State, grant: dict[str, Any], refresh_token: str | None) -> dict[str, Any]:
    now = state.now()
    user = state.data["users"].get(grant["user_id"], {})
    access_claims = {
        "nbf": int(now.timestamp()),
        "exp": int(now.timestamp()) + ACCESS_TOKEN_SECONDS,
        "iss": "https://identity.xero.com",
        "aud": "https://identity.xero.com/resources",
        "client_id": grant["client_id"],
        "sub": grant["user_id"],
        "auth_time": int(now.timestamp()),
        "xero_userid": grant["user_id"],
        "global_session_id": grant["grant_id"],
        "sid": grant["grant_id"],
        "jti": uuid.uuid4().hex,
        "authentication_event_id": grant["auth_event_id"],
        "scope": grant["scope"].split(),
    }
    access_token = make_jwt(access_claims)
    state.data["access_tokens"][access_token] = {
        "grant_id": grant["grant_id"],
        "client_id": grant["client_id"],
        "user_id": grant["user_id"],
        "expires": now + timedelta(seconds=ACCESS_TOKEN_SECONDS),
    }
    id_token = make_jwt(
        {
            "nbf": int(now.timestamp()),
            "exp": int(now.timestamp()) + ID_TOKEN_SECONDS,
            "iss": "https://identity.xero.com",
            "aud": grant["client_id"],
            "sub": grant["user_id"],
            "auth_time": int(now.timestamp()),
            "xero_userid": grant["user_id"],
            "global_session_id": grant["grant_id"],
            "preferred_username": user.get("email"),
            "email": user.get("email"),
            "given_name": user.get("first_name"),
            "family_name": user.get("last_name"),
        }
    )
    token_set: dict[str, Any] = {
        "id_token": id_token,
        "access_token": access_token,
        "expires_in": ACCESS_TOKEN_SECONDS,
        "token_type": "Bearer",
        "scope": grant["scope"],
    }
    if refresh_token:
        token_set["refresh_token"] = refresh_token
    return token_set


def _new_refresh_token(state: State, grant: dict[str, Any]) -> str | None:
    # Xero only issues refresh tokens when offline_access was granted (notes §5).
    if "offline_access" not in grant["scope"].split():
        return None
    token = secrets.token_hex(32)
    now = state.now()
    state.data["refresh_tokens"][token] = {
        "grant_id": grant["grant_id"],
        "issued": now,
        "expires": now + timedelta(days=REFRESH_TOKEN_DAYS),
        "rotated_at": None,
        "successor": None,
    }
    return token


def revoke_grant(state: State, grant_id: str) -> None:
    grant = state.data["grants"].get(grant_id)
    if grant:
        grant["revoked"] = True


def token(state: State, headers: dict[str, str], body: bytes) -> HttpReply:
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    client_id, client_secret = _client_credentials(headers, form)
    with state.lock:
        app = state.apps.get(client_id or "")
        if app is None or (
            client_secret is not None
            and not hmac.compare_digest(client_secret.encode(), app["client_secret"].encode())
        ):
            return HttpReply.json(400, {"error": "invalid_client"})
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return _exchange_code(state, app, form, secret_given=client_secret is not None)
        if grant_type == "refresh_token":
            if client_secret is None:
                return HttpReply.json(400, {"error": "invalid_client"})
            return _refresh(state, app, form)
        return HttpReply.json(400, {"error": "unsupported_grant_type"})


def _invalid_grant() -> HttpReply:
    return HttpReply(400, INVALID_GRANT, {"Content-Type": "application/json"})


def _exchange_code(
    state: State, app: dict[str, Any], form: dict[str, str], *, secret_given: bool
) -> HttpReply:
    code = state.data["auth_codes"].get(form.get("code", ""))
    now = state.now()
    if code is None or code["client_id"] != app["client_id"]:
        return _invalid_grant()
    if code["used"]:
        # RFC 6749 §4.1.2: a reused code SHOULD revoke what it issued - the stricter choice.
        if code.get("grant_id"):
            revoke_grant(state, code["grant_id"])
        return _invalid_grant()
    if now - code["created"] > timedelta(seconds=CODE_SECONDS):
        return _invalid_grant()
    if form.get("redirect_uri", code["redirect_uri"]) != code["redirect_uri"]:
        return _invalid_grant()
    challenge = code.get("code_challenge")
    if challenge:
        verifier = form.get("code_verifier", "")
        expected = _b64(hashlib.sha256(verifier.encode()).digest())
        if not verifier or not hmac.compare_digest(expected, challenge):
            return _invalid_grant()
    elif not secret_given:
        return HttpReply.json(400, {"error": "invalid_client"})
    code["used"] = True
    grant = {
        "grant_id": new_id(),
        "client_id": app["client_id"],
        "user_id": code["user_id"],
        "scope": code["scope"],
        "auth_event_id": code["auth_event_id"],
        "revoked": False,
        "created": now,
    }
    state.data["grants"][grant["grant_id"]] = grant
    code["grant_id"] = grant["grant_id"]
    return HttpReply.json(200, _issue_tokens(state, grant, _new_refresh_token(state, grant)))


def _refresh(state: State, app: dict[str, Any], form: dict[str, str]) -> HttpReply:
    record = state.data["refresh_tokens"].get(form.get("refresh_token", ""))
    now = state.now()
    if record is None:
        return _invalid_grant()
    grant = state.data["grants"].get(record["grant_id"])
    if grant is None or grant["revoked"] or grant["client_id"] != app["client_id"]:
        return _invalid_grant()
    if now >= record["expires"]:
        return _invalid_grant()
    if record["rotated_at"] is None:
        successor = _new_refresh_token(state, grant)
        record["rotated_at"] = now
        record["successor"] = successor
        return HttpReply.json(200, _issue_tokens(state, grant, successor))
    if now - record["rotated_at"] <= REFRESH_GRACE:
        return HttpReply.json(200, _issue_tokens(state, grant, record["successor"]))
    return _invalid_grant()


def revocation(state: State, headers: dict[str, str], body: bytes) -> HttpReply:
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    client_id, client_secret = _client_credentials(headers, form)
    with state.lock:
        app = state.apps.get(client_id or "")
        if (
            app is None
            or client_secret is None
            or not hmac.compare_digest(client_secret.encode(), app["client_secret"].encode())
        ):
            return HttpReply.json(400, {"error": "invalid_client"})
        record = state.data["refresh_tokens"].get(form.get("token", ""))
        if record is not None:
            grant = state.data["grants"].get(record["grant_id"])
            if grant and grant["client_id"] == app["client_id"]:
                # "revoke access tokens and remove all a user's connections" (SDK oauth2.py)
                disconnect_user(state, app["client_id"], grant["user_id"])
    return HttpReply(200, b"")


def disconnect_user(state: State, client_id: str, user_id: str) -> None:
    for grant in state.data["grants"].values():
        if grant["client_id"] == client_id and grant["user_id"] == user_id:
            grant["revoked"] = True
    for connection in state.connections_for(client_id, user_id):
        del state.data["connections"][connection["id"]]


def remove_connection(state: State, connection_id: str, *, revoke: bool = False) -> bool:
    """Removes one connection. When the user has no connection left to the app, its token sets
    are revoked too (not confirmed; the stricter reading - refresh then gets invalid_grant)."""
    connection = state.data["connections"].pop(connection_id, None)
    if connection is None:
        return False
    remaining = state.connections_for(connection["client_id"], connection["user_id"])
    if revoke or not remaining:
        for grant in state.data["grants"].values():
            if (
                grant["client_id"] == connection["client_id"]
                and grant["user_id"] == connection["user_id"]
            ):
                grant["revoked"] = True
    return True


# --- bearer authentication & connections ----------------------------------------------------------


def authenticate(
    state: State, headers: dict[str, str]
) -> tuple[dict[str, Any] | None, HttpReply | None]:
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return None, problem(401, "Unauthorized", "AuthenticationUnsuccessful")
    record = state.data["access_tokens"].get(auth[7:].strip())
    if record is None:
        return None, problem(401, "Unauthorized", "AuthenticationUnsuccessful")
    grant = state.data["grants"].get(record["grant_id"])
    if grant is None or grant["revoked"]:
        return None, problem(401, "Unauthorized", "AuthenticationUnsuccessful")
    expires: datetime = record["expires"]
    if state.now() >= expires:
        stamp = expires.strftime("%m/%d/%Y %H:%M:%S")
        return None, problem(401, "Unauthorized", f"TokenExpired: token expired at {stamp}")
    return record, None


def connection_json(connection: dict[str, Any], state: State) -> dict[str, Any]:
    org = state.org(connection["tenantId"])
    return {
        "id": connection["id"],
        "authEventId": connection["authEventId"],
        "tenantId": connection["tenantId"],
        "tenantType": connection["tenantType"],
        "tenantName": org["organisation"]["Name"] if org else "",
        "createdDateUtc": iso_utc(connection["createdDateUtc"]),
        "updatedDateUtc": iso_utc(connection["updatedDateUtc"]),
    }


def list_connections(
    state: State, token_record: dict[str, Any], auth_event_id: str | None
) -> list[dict[str, Any]]:
    items = state.connections_for(token_record["client_id"], token_record["user_id"])
    if auth_event_id:
        items = [c for c in items if c["authEventId"].lower() == auth_event_id.lower()]
    items.sort(key=lambda c: c["createdDateUtc"])
    return [connection_json(c, state) for c in items]
