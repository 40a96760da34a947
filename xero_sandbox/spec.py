"""Request and response validation against Xero's official OpenAPI documents.

The specs (/work/shared/xero-openapi, 16.1.0; a copy can be pointed at with XERO_SANDBOX_SPEC_DIR)
are parsed once per process with yaml.CSafeLoader (~0.3 s) and kept in memory.

Two flavours of every schema are used:
* responses: the schema as published (with `required`), so that what the sandbox emits is what
  the spec promises;
* requests: the same schema without `required`. Xero reports missing fields as a
  ValidationException with a business message ("The Date field must be specified."), not as a
  PostDataInvalidException (xero-api-notes.md §2, §8), so only the *shape* (types, enums) is
  checked here and rules.py reports missing values.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

DEFAULT_SPEC_DIRS = (
    Path(os.environ.get("XERO_SANDBOX_SPEC_DIR", "/nonexistent")),
    Path(__file__).resolve().parent / "openapi",
    Path("/work/shared/xero-openapi"),
)
ACCOUNTING_URI = "urn:xero:accounting"
IDENTITY_URI = "urn:xero:identity"
_lock = threading.Lock()


def _load_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - SafeLoader family only


def _load_document(name: str) -> Any:
    """The compact JSON cache shipped in xero_sandbox/openapi/ if present, else the YAML."""
    for directory in DEFAULT_SPEC_DIRS:
        cached = directory / name.replace(".yaml", ".json")
        if cached.is_file():
            return json.loads(cached.read_text(encoding="utf-8"))
        source = directory / name
        if source.is_file():
            return _load_yaml(source)
    raise FileNotFoundError(f"OpenAPI document {name} not found in {DEFAULT_SPEC_DIRS}")


def _compact(node: Any) -> Any:
    """Drop prose and examples (not schemas named like them) to shrink the cache ~5x."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in {"description", "summary"} and isinstance(value, str):
                continue
            if key in {"example", "examples", "x-example", "externalDocs"}:
                continue
            out[key] = _compact(value)
        return out
    if isinstance(node, list):
        return [_compact(v) for v in node]
    return node


def build_cache(source_dir: Path, target_dir: Path) -> list[Path]:
    """Regenerate xero_sandbox/openapi/*.json from the official YAML files."""
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("xero_accounting.yaml", "xero-identity.yaml", "xero-webhooks.yaml"):
        document = _compact(_load_yaml(source_dir / name))
        target = target_dir / name.replace(".yaml", ".json")
        target.write_text(
            json.dumps(document, default=str, separators=(",", ":")), encoding="utf-8"
        )
        written.append(target)
    return written


def _strip(node: Any, drop: frozenset[str]) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v, drop) for k, v in node.items() if k not in drop}
    if isinstance(node, list):
        return [_strip(v, drop) for v in node]
    return node


@dataclass
class Operation:
    operation_id: str
    method: str
    template: str
    request_ref: str | None
    responses: dict[str, str] = field(default_factory=dict)


@dataclass
class SpecSet:
    operations: list[tuple[re.Pattern[str], int, Operation]]
    strict: Registry
    lenient: Registry

    def find(self, method: str, path: str, identity: bool = False) -> Operation | None:
        best: tuple[int, Operation] | None = None
        for pattern, literal_count, operation in self.operations:
            if operation.method != method.lower():
                continue
            if operation.template.startswith("identity:") != identity:
                continue
            match = pattern.match(path)
            if not match:
                continue
            # /Contacts/{ContactID} and /Contacts/{ContactNumber} both match: prefer the ID
            # route when the value looks like a GUID.
            score = literal_count * 10
            for name, value in match.groupdict().items():
                if name.endswith("ID") and _GUID_RE.match(value):
                    score += 1
            if best is None or score > best[0]:
                best = (score, operation)
        return best[1] if best else None


_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def _ref_of(content: dict[str, Any] | None, base: str) -> str | None:
    if not content:
        return None
    schema = content.get("application/json", {}).get("schema")
    if not schema:
        return None
    ref = schema.get("$ref")
    if ref:
        return base + str(ref)
    return None


def _build_operations(
    doc: dict[str, Any], base: str
) -> list[tuple[re.Pattern[str], int, Operation]]:
    components = doc.get("components", {})
    shared_responses = components.get("responses", {})
    result = []
    for template, item in doc.get("paths", {}).items():
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        literal_count = len([s for s in template.split("/") if s and not s.startswith("{")])
        for method, op in item.items():
            if method not in {"get", "put", "post", "delete", "patch"}:
                continue
            request_ref = _ref_of((op.get("requestBody") or {}).get("content"), base)
            responses: dict[str, str] = {}
            for status, response in (op.get("responses") or {}).items():
                if "$ref" in response:
                    response = shared_responses.get(response["$ref"].split("/")[-1], {})
                ref = _ref_of(response.get("content"), base)
                if ref is None:
                    schema = (
                        (response.get("content") or {}).get("application/json", {}).get("schema")
                    )
                    if (
                        schema
                        and schema.get("type") == "array"
                        and "$ref" in schema.get("items", {})
                    ):
                        ref = "array:" + base + schema["items"]["$ref"]
                if ref:
                    responses[str(status)] = ref
            operation = Operation(
                op.get("operationId", ""), method, template, request_ref, responses
            )
            result.append((re.compile(regex, re.IGNORECASE), literal_count, operation))
    return result


@functools.lru_cache(maxsize=1)
def load_specs() -> SpecSet:
    with _lock:
        accounting = _strip(
            _load_document("xero_accounting.yaml"),
            frozenset({"example", "examples", "x-example"}),
        )
        identity = _strip(_load_document("xero-identity.yaml"), frozenset({"example", "examples"}))
        lenient_accounting = _strip(accounting, frozenset({"required"}))
        strict = Registry().with_resources(
            [
                (ACCOUNTING_URI, DRAFT4.create_resource(accounting)),
                (IDENTITY_URI, DRAFT4.create_resource(identity)),
            ]
        )
        lenient = Registry().with_resources(
            [(ACCOUNTING_URI, DRAFT4.create_resource(lenient_accounting))]
        )
        operations = _build_operations(accounting, ACCOUNTING_URI)
        for pattern, count, op in _build_operations(identity, IDENTITY_URI):
            op.template = "identity:" + op.template
            operations.append((pattern, count, op))
        return SpecSet(operations, strict, lenient)


@functools.lru_cache(maxsize=256)
def _validator(ref: str, lenient: bool) -> Draft4Validator:
    specs = load_specs()
    if ref.startswith("array:"):
        schema: dict[str, Any] = {"type": "array", "items": {"$ref": ref[len("array:") :]}}
    else:
        schema = {"$ref": ref}
    return Draft4Validator(schema, registry=specs.lenient if lenient else specs.strict)


def find_operation(method: str, path: str, identity: bool = False) -> Operation | None:
    """The spec operation for a concrete path (accounting paths are relative to /api.xro/2.0)."""
    return load_specs().find(method, path, identity)


def _path_text(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def request_errors(operation: Operation, body: Any) -> list[str]:
    """Shape errors of a request body, phrased like .NET's JSON deserialiser (path + problem)."""
    if operation.request_ref is None:
        return []
    validator = _validator(operation.request_ref, True)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{e.message}. Path '{_path_text(e.absolute_path)}'" for e in errors[:5]]


def response_errors(operation: Operation, status: int, body: Any) -> list[str]:
    """Every response body the sandbox produces must fit the spec's response schema."""
    ref = operation.responses.get(str(status))
    if ref is None:
        return []
    validator = _validator(ref, False)
    return [
        f"{operation.operation_id} {status}: {e.message} at {_path_text(e.absolute_path)}"
        for e in list(validator.iter_errors(body))[:5]
    ]


def schema_errors(ref_name: str, body: Any, identity: bool = False) -> list[str]:
    """Validate against a named component schema, e.g. ("AccessToken", body, identity=True)."""
    base = IDENTITY_URI if identity else ACCOUNTING_URI
    validator = _validator(f"{base}#/components/schemas/{ref_name}", False)
    return [
        f"{ref_name}: {e.message} at {_path_text(e.absolute_path)}"
        for e in validator.iter_errors(body)
    ]


@functools.lru_cache(maxsize=1)
def _webhook_validator() -> Draft202012Validator:
    document = _load_document("xero-webhooks.yaml")  # OpenAPI 3.1 => JSON Schema 2020-12
    return Draft202012Validator(document["components"]["schemas"]["WebhookEvent"])


def webhook_errors(payload: Any) -> list[str]:
    """A delivered event batch against WH-SPEC WebhookEvent. (Intent-to-Receive payloads use
    sequence 0, below the spec's minimum of 1 - notes §6 - so do not validate those.)"""
    return [
        f"WebhookEvent: {e.message} at {_path_text(e.absolute_path)}"
        for e in _webhook_validator().iter_errors(payload)
    ]


if __name__ == "__main__":
    # python -m xero_sandbox.spec [SOURCE_DIR]: rebuild the compact JSON cache.
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/xero-openapi")
    for path in build_cache(source, Path(__file__).resolve().parent / "openapi"):
        print(path, path.stat().st_size)
