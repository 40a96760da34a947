"""Admin → Integrations (Xero connections) and Admin → Accounts; services decide, views call."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from admin_jobs.models import JobDirection, JobKind, JobTrigger
from admin_jobs.services import job_enqueue
from billing.models import Entity, TaxRate
from core.permissions import admin_required
from xero_integration import client as xero
from xero_integration.models import ConnectionStatus, XeroConnection
from xero_integration.selectors import (
    account_matches,
    connection_list,
    entity_list_with_connections,
    tax_rate_choices,
    tax_rates_for_mapping,
)
from xero_integration.services import (
    connection_disconnect,
    entity_link_connection,
    tax_rate_map,
    xero_configuration_missing,
    xero_oauth_complete,
    xero_oauth_start,
)

CHOOSE_SESSION_KEY = "xero_choose"


def _posted_id(request: HttpRequest, name: str) -> int | None:
    value = request.POST.get(name, "")
    return int(value) if value.isdigit() else None


def _first_message(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@require_GET
@admin_required
def integrations(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "xero_integration/integrations.html",
        {
            "entities": entity_list_with_connections(),
            "connections": connection_list(),
            "missing_configuration": xero_configuration_missing(),
        },
    )


@require_POST
@admin_required
def connect(request: HttpRequest, entity_id: int) -> HttpResponse:
    entity = get_object_or_404(Entity, pk=entity_id)
    try:
        url = xero_oauth_start(session=request.session, entity=entity)
    except ValidationError as exc:
        messages.error(request, _first_message(exc))
        return redirect("xero_integration:integrations")
    return HttpResponseRedirect(url)


@require_GET
@admin_required
def callback(request: HttpRequest) -> HttpResponse:
    try:
        result = xero_oauth_complete(
            session=request.session, params=request.GET.dict(), user=request.user
        )
    except ValidationError as exc:
        messages.error(request, _first_message(exc))
        return redirect("xero_integration:integrations")
    except xero.XeroError as exc:
        messages.error(request, f"Xero could not list the authorised organisations: {exc.message}")
        return redirect("xero_integration:integrations")
    if len(result.connections) == 1:
        return _link(request, entity=result.entity, connection=result.connections[0])
    request.session[CHOOSE_SESSION_KEY] = {
        "entity_id": result.entity.pk,
        "connection_ids": [c.pk for c in result.connections],
    }
    return redirect("xero_integration:choose")


def _link(request: HttpRequest, *, entity: Entity, connection: XeroConnection) -> HttpResponse:
    try:
        entity_link_connection(entity=entity, connection=connection, user=request.user)
    except ValidationError as exc:
        messages.error(request, _first_message(exc))
    else:
        messages.success(
            request, f"{entity.name} now syncs with the Xero organisation {connection.tenant_name}."
        )
    return redirect("xero_integration:integrations")


@require_http_methods(["GET", "POST"])
@admin_required
def choose(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(CHOOSE_SESSION_KEY)
    if not pending:
        messages.error(request, "There is no Xero organisation waiting to be chosen.")
        return redirect("xero_integration:integrations")
    entity = get_object_or_404(Entity, pk=pending["entity_id"])
    connections = XeroConnection.objects.filter(pk__in=pending["connection_ids"])
    if request.method == "POST":
        chosen_id = _posted_id(request, "connection_id")
        chosen = connections.filter(pk=chosen_id).first() if chosen_id is not None else None
        if chosen is None:
            messages.error(request, "Choose one of the organisations you authorised.")
        else:
            del request.session[CHOOSE_SESSION_KEY]
            return _link(request, entity=entity, connection=chosen)
    return render(
        request,
        "xero_integration/choose.html",
        {"entity": entity, "connections": connections},
    )


@require_POST
@admin_required
def link_existing(request: HttpRequest, entity_id: int) -> HttpResponse:
    """Let an entity share an organisation another entity already connected."""
    entity = get_object_or_404(Entity, pk=entity_id)
    chosen_id = _posted_id(request, "connection_id")
    connection = (
        XeroConnection.objects.filter(pk=chosen_id, status=ConnectionStatus.CONNECTED).first()
        if chosen_id is not None
        else None
    )
    if connection is None:
        messages.error(request, "Choose a connected Xero organisation.")
        return redirect("xero_integration:integrations")
    return _link(request, entity=entity, connection=connection)


@require_http_methods(["GET", "POST"])
@admin_required
def disconnect(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_object_or_404(XeroConnection, pk=connection_id)
    entities = [link.entity for link in connection.entity_links.select_related("entity")]
    if request.method == "POST":
        try:
            connection_disconnect(connection=connection, user=request.user)
        except xero.XeroError as exc:
            messages.error(request, f"Xero did not disconnect the organisation: {exc.message}")
        else:
            messages.success(
                request,
                f"Disconnected {connection.tenant_name}. Links to Xero records are kept, so "
                "reconnecting the same organisation carries on without duplicates.",
            )
        return redirect("xero_integration:integrations")
    return render(
        request,
        "xero_integration/disconnect.html",
        {"connection": connection, "entities": entities},
    )


@require_GET
@admin_required
def accounts(request: HttpRequest) -> HttpResponse:
    rows = []
    for entity in entity_list_with_connections():
        rows.append(
            {
                "entity": entity,
                "matches": account_matches(entity=entity),
                "tax_rates": tax_rates_for_mapping(entity=entity),
                "xero_tax_rates": tax_rate_choices(entity=entity),
            }
        )
    return render(request, "xero_integration/accounts.html", {"rows": rows})


@require_POST
@admin_required
def accounts_pull(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_object_or_404(XeroConnection, pk=connection_id)
    link = connection.entity_links.select_related("entity").first()
    with transaction.atomic():
        job = job_enqueue(
            kind=JobKind.PULL_ACCOUNTS,
            entity=link.entity if link else None,
            target=connection,
            description=f"Chart of accounts and tax rates — {connection.tenant_name}",
            direction=JobDirection.IMPORT,
            triggered_by=JobTrigger.USER,
            user=request.user,  # type: ignore[arg-type]
            payload={"connection_id": connection.pk},
        )
    messages.success(
        request, f"Pulling {connection.tenant_name}'s accounts and tax rates (job #{job.pk})."
    )
    return redirect("xero_integration:accounts")


@require_POST
@admin_required
def tax_rate_mapping(request: HttpRequest, tax_rate_id: int) -> HttpResponse:
    tax_rate = get_object_or_404(TaxRate, pk=tax_rate_id)
    try:
        tax_rate_map(tax_rate=tax_rate, xero_tax_type=request.POST.get("xero_tax_type", ""))
    except ValidationError as exc:
        messages.error(request, f"{tax_rate.name}: {_first_message(exc)}")
    else:
        messages.success(request, f"{tax_rate.name} now maps to {tax_rate.xero_tax_type or '—'}.")
    return redirect("xero_integration:accounts")
