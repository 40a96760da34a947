"""Request bodies are checked against the spec; the response validator itself works."""

from __future__ import annotations

import json

import pytest
from xero_python.exceptions import AccountingBadRequestException, HTTPStatusException

from xero_sandbox import spec


def _raw_put(xero, path, body) -> HTTPStatusException:
    api = xero.accounting
    try:
        api.api_client.call_api(
            api.get_resource_url(path),
            "PUT",
            header_params={
                "xero-tenant-id": xero.tenant_id,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            body=body,
            auth_settings=["OAUTH2"],
            response_type="Invoices",
            response_model_finder=api.get_model_finder(),
        )
    except HTTPStatusException as exc:
        return exc
    raise AssertionError("expected an error")


def test_string_where_a_number_is_required_is_post_data_invalid(xero, sandbox):
    exc = _raw_put(
        xero, "/Invoices", {"Invoices": [{"Type": "ACCREC", "LineItems": [{"UnitAmount": "abc"}]}]}
    )
    body = json.loads(exc.body)
    assert exc.status == 400
    assert (body["ErrorNumber"], body["Type"]) == (14, "PostDataInvalidException")
    assert body["Message"].startswith("JSON for post data was invalid,")
    assert "Invoices[0].LineItems[0].UnitAmount" in body["Message"]
    assert sandbox.requests_log()[-1]["status"] == 400


def test_malformed_json_and_no_data(xero, sandbox):
    api = xero.accounting
    with pytest.raises(HTTPStatusException) as malformed:
        # A non-JSON content type makes the SDK send the string as-is (rest.py).
        api.api_client.request(
            "PUT",
            api.get_resource_url("/Invoices"),
            headers={
                "xero-tenant-id": xero.tenant_id,
                "Content-Type": "text/plain",
                "Authorization": f"Bearer {xero.token['access_token']}",
            },
            body='{"Invoices": [',
        )
    body = json.loads(malformed.value.body)
    assert (malformed.value.status, body["ErrorNumber"]) == (400, 14)
    assert body["Message"].startswith("JSON for post data was invalid,")
    assert sandbox.requests_log()[-1]["status"] == 400
    with pytest.raises(AccountingBadRequestException) as empty:
        api.create_invoices(xero.tenant_id, {"Invoices": []})
    assert empty.value.error_data["ErrorNumber"] == 17
    assert empty.value.error_data["Message"] == (
        "No data has been processed for this endpoint. This endpoint is expecting Invoice data "
        "to be specifed in the request body."
    )


def test_sdk_defaults_and_read_only_fields_pass(xero):
    # xero-python sends HasAttachments/HasErrors/HasValidationErrors defaults; they must be ignored.
    from xero_python.accounting import Contact, Contacts

    contact = Contact(
        name="Defaults Ltd", has_attachments=False, has_validation_errors=False, is_customer=True
    )
    created = xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[contact])
    ).contacts[0]
    assert created.is_customer is False  # read-only: set by Xero, not by the request


def test_response_validator_catches_a_bad_body():
    operation = spec.find_operation("get", "/Invoices")
    assert operation is not None and operation.operation_id == "getInvoices"
    assert spec.response_errors(operation, 200, {"Invoices": [{"Total": "12.00"}]})
    assert not spec.response_errors(operation, 200, {"Invoices": [{"Total": 12.0}]})


def test_shipped_json_cache_matches_the_official_yaml():
    from pathlib import Path

    source = Path("/work/shared/xero-openapi")
    if not source.is_dir():
        pytest.skip("official YAML not available here")
    cache = Path(spec.__file__).resolve().parent / "openapi"
    for name in ("xero_accounting.yaml", "xero-identity.yaml", "xero-webhooks.yaml"):
        expected = json.loads(
            json.dumps(spec._compact(spec._load_yaml(source / name)), default=str)
        )
        assert json.loads((cache / name.replace(".yaml", ".json")).read_text()) == expected, name
