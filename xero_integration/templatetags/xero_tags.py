from typing import Any

from django import template
from django.db.models import Model

from xero_integration.record_status import record_panel_context

register = template.Library()


@register.inclusion_tag("xero_integration/_panel.html", takes_context=True)
def xero_panel(context: template.Context, record: Model) -> dict[str, Any]:
    """The Xero Integration panel of a customer, invoice or credit note detail page."""
    panel = record_panel_context(obj=record)
    panel["request"] = context.get("request")
    panel["csrf_token"] = context.get("csrf_token")
    panel["nav_is_admin"] = context.get("nav_is_admin")
    return panel
