#!/usr/bin/env python3
"""Validate core/openapi.json.

1. The document must be a valid OpenAPI 3.1 document according to the PyPI package
   `openapi-spec-validator` (install with `pip install openapi-spec-validator`).
2. Every path and method of the HTTP contract (shared spec `http-api.md`, plus the project's
   documented additions) must be present, as must the outbound `webhooks` entries.
3. Every operation must have an operationId, a security requirement and the error answers the
   project documents for its kind.

Exits non-zero on any problem. Usage: python3 scripts/check_openapi.py [path/to/openapi.json]
"""
import json
import re
import sys
from pathlib import Path

# (path, method, success status). Path parameter names are compared loosely: `{x}` matches
# any `{y}` in the same position.
CONTRACT = [
    ("/healthz", "get", "200"),
    ("/openapi.json", "get", "200"),
    # admin API
    ("/admin/accounts", "post", "201"),
    ("/admin/accounts/{accountId}", "get", "200"),
    ("/admin/accounts/{accountId}", "patch", "200"),
    ("/admin/accounts/{accountId}/api-keys", "post", "201"),
    ("/admin/accounts/{accountId}/api-keys/{key}", "delete", "204"),
    ("/admin/accounts/{accountId}/connections", "post", "201"),
    ("/admin/accounts/{accountId}/connections", "get", "200"),
    ("/admin/accounts/{accountId}/connections/{connectionId}", "get", "200"),
    ("/admin/accounts/{accountId}/connections/{connectionId}", "delete", "204"),
    ("/admin/accounts/{accountId}/webhooks", "post", "201"),
    ("/admin/accounts/{accountId}/webhooks", "get", "200"),
    ("/admin/accounts/{accountId}/webhooks/{webhookId}", "get", "200"),
    ("/admin/accounts/{accountId}/webhooks/{webhookId}", "delete", "204"),
    ("/admin/accounts/{accountId}/webhooks/{webhookId}/deliveries", "get", "200"),
    ("/admin/accounts/{accountId}/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
     "post", "202"),
    # section 7: managing webhooks
    ("/admin/accounts/{accountId}/webhooks/{webhookId}", "patch", "200"),
    ("/admin/accounts/{accountId}/webhooks/{webhookId}/rotate-secret", "post", "200"),
    ("/admin/accounts/{accountId}/webhooks/{webhookId}/test", "post", "202"),
    # data API
    ("/api/customers", "post", "201"),
    ("/api/customers", "get", "200"),
    ("/api/customers/{id}", "get", "200"),
    ("/api/customers/{id}", "patch", "200"),
    ("/api/vendors", "post", "201"),
    ("/api/vendors", "get", "200"),
    ("/api/vendors/{id}", "get", "200"),
    ("/api/vendors/{id}", "patch", "200"),
    ("/api/accounts", "post", "201"),
    ("/api/accounts", "get", "200"),
    ("/api/accounts/{id}", "get", "200"),
    ("/api/accounts/{id}", "patch", "200"),
    # section 7: deleting
    ("/api/customers/{id}", "delete", "204"),
    ("/api/vendors/{id}", "delete", "204"),
    ("/api/accounts/{id}", "delete", "204"),
    ("/api/invoices", "post", "201"),
    ("/api/invoices", "get", "200"),
    ("/api/invoices/{id}", "get", "200"),
    ("/api/invoices/{id}", "put", "200"),
    ("/api/invoices/{id}/payments", "post", "201"),
    ("/api/payments", "get", "200"),
    ("/api/payments/{id}", "get", "200"),
    ("/api/expenses", "post", "201"),
    ("/api/expenses", "get", "200"),
    ("/api/expenses/{id}", "get", "200"),
    ("/api/expenses/{id}", "put", "200"),
    ("/api/bank-transactions", "post", "201"),
    ("/api/bank-transactions", "get", "200"),
    ("/api/bank-transactions/{id}", "get", "200"),
    ("/api/syncs/{syncId}", "get", "200"),
    # section 7: finding and repairing syncs
    ("/api/syncs", "get", "200"),
    ("/api/syncs/{syncId}/retry", "post", "202"),
    # section 7: what each target requires
    ("/api/meta/{objectType}", "get", "200"),
]
WEBHOOKS = ["api_push_update", "api_push_complete", "push", "webhook_test"]
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

PROBLEM_SLUGS = {
    "unauthorized", "missing-scope", "write-mode-disabled", "not-found", "method-not-allowed",
    "validation-failed", "idempotency-key-reused", "idempotency-in-flight", "conflict",
    "nothing-to-retry",
    "precondition-failed", "payload-too-large", "unsupported-media-type", "malformed-json",
    "invalid-header", "invalid-query", "internal", "storage-unavailable", "uri-too-long",
    "header-fields-too-large", "malformed-request",
}


def short(err, limit=600):
    """The validator's messages can embed the whole document: keep the start."""
    text = str(err)
    return text if len(text) <= limit else text[:limit] + " ..."


def shape(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def main():
    root = Path(__file__).resolve().parent.parent
    doc_path = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "core" / "openapi.json"
    problems = []

    try:
        from openapi_spec_validator import validate
        from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
    except ImportError:
        print("openapi-spec-validator is not installed: pip install openapi-spec-validator",
              file=sys.stderr)
        return 2
    try:
        from importlib.metadata import version
        print(f"openapi-spec-validator {version('openapi-spec-validator')}")
    except Exception:  # noqa: BLE001 - version display only
        pass

    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"{doc_path}: cannot load: {e}", file=sys.stderr)
        return 1

    if doc.get("openapi", "").split(".")[:2] != ["3", "1"]:
        problems.append(f"openapi is {doc.get('openapi')!r}, expected 3.1.x")

    try:
        validate(doc)
    except OpenAPIValidationError as e:
        problems.append(f"openapi-spec-validator: {short(e)}")
    except Exception as e:  # noqa: BLE001 - any validator failure fails the check
        problems.append(f"openapi-spec-validator failed: {type(e).__name__}: {short(e)}")

    paths = doc.get("paths") or {}
    by_shape = {}
    for p in paths:
        if shape(p) in by_shape:
            problems.append(f"paths {by_shape[shape(p)]} and {p} are the same template")
        by_shape[shape(p)] = p
    for path, method, status in CONTRACT:
        actual = by_shape.get(shape(path))
        if actual is None:
            problems.append(f"missing path {path}")
            continue
        op = paths[actual].get(method)
        if op is None:
            problems.append(f"missing operation {method.upper()} {path}")
            continue
        if status not in (op.get("responses") or {}):
            problems.append(f"{method.upper()} {path}: no {status} answer")
    wanted = {(shape(p), m) for p, m, _ in CONTRACT}
    for p, item in paths.items():
        for m in item:
            if m in METHODS and (shape(p), m) not in wanted:
                problems.append(f"{m.upper()} {p} is not in the contract list of this script")

    hooks = doc.get("webhooks") or {}
    for name in WEBHOOKS:
        if "post" not in (hooks.get(name) or {}):
            problems.append(f"missing webhooks entry {name} (post)")

    schemes = (doc.get("components") or {}).get("securitySchemes") or {}
    if schemes.get("basicAuth", {}).get("scheme") != "basic":
        problems.append("securitySchemes.basicAuth must be HTTP basic")
    if schemes.get("adminBearer", {}).get("scheme") != "bearer":
        problems.append("securitySchemes.adminBearer must be HTTP bearer")

    problem_schema = (doc.get("components") or {}).get("schemas", {}).get("Problem", {})
    slugs = {t.removeprefix("/problems/")
             for t in problem_schema.get("properties", {}).get("type", {}).get("enum", [])}
    if slugs != PROBLEM_SLUGS:
        problems.append(f"Problem.type slugs differ: missing {sorted(PROBLEM_SLUGS - slugs)}, "
                        f"extra {sorted(slugs - PROBLEM_SLUGS)}")

    op_ids = set()
    for p, item in paths.items():
        for m, op in item.items():
            if m not in METHODS:
                continue
            where = f"{m.upper()} {p}"
            oid = op.get("operationId")
            if not oid:
                problems.append(f"{where}: no operationId")
            elif oid in op_ids:
                problems.append(f"{where}: duplicate operationId {oid}")
            op_ids.add(oid)
            sec = op.get("security")
            codes = set(op.get("responses") or {})
            if p.startswith("/api/"):
                if sec != [{"basicAuth": []}]:
                    problems.append(f"{where}: security must be basicAuth")
                need = {"401", "500", "503"}
                if m in {"post", "put", "patch"}:
                    need |= {"400", "403", "409", "413", "415", "422"}
                if m in {"put", "patch"}:
                    need |= {"404", "412"}
                if m == "delete":
                    need |= {"400", "403", "404", "409", "412"}
                if "{" in p:
                    need |= {"404"}
            elif p.startswith("/admin/"):
                if sec != [{"adminBearer": []}]:
                    problems.append(f"{where}: security must be adminBearer")
                need = {"401", "500", "503"}
                if "requestBody" in op:
                    need |= {"400", "413", "415", "422"}
                if "{" in p:
                    need |= {"404"}
            else:
                if sec != []:
                    problems.append(f"{where}: must need no auth (security: [])")
                need = set()
            missing = need - codes
            if missing:
                problems.append(f"{where}: missing answers {sorted(missing)}")

    for msg in problems:
        print(f"FAIL: {msg}", file=sys.stderr)
    if problems:
        print(f"{doc_path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n_ops = sum(1 for item in paths.values() for m in item if m in METHODS)
    print(f"{doc_path}: valid OpenAPI {doc['openapi']}, {len(paths)} paths, {n_ops} "
          f"operations, {len(hooks)} webhooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
