import pytest
from django.urls import reverse

from core.models import GeneralSettings
from core.selectors import xero_is_enabled
from tests.billing.factories import AdminUserFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_admin_switches_the_accounting_package(client):
    client.force_login(AdminUserFactory())
    response = client.post(reverse("core:general_settings"), {"accounting_package": "quickbooks"})
    assert response.status_code == 302
    assert GeneralSettings.objects.get(pk=1).accounting_package == "quickbooks"
    assert xero_is_enabled() is False


def test_unknown_package_is_refused_with_a_message(client):
    client.force_login(AdminUserFactory())
    response = client.post(reverse("core:general_settings"), {"accounting_package": "sage"})
    assert response.status_code == 200
    assert "Select a valid choice. sage is not one of the available choices." in (
        response.content.decode()
    )
    assert GeneralSettings.objects.get(pk=1).accounting_package == "xero"


def test_staff_cannot_open_admin_pages(client):
    client.force_login(UserFactory())
    assert client.get(reverse("core:general_settings")).status_code == 403
    assert (
        client.post(reverse("core:general_settings"), {"accounting_package": "none"}).status_code
        == 403
    )


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("core:general_settings"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
