"""OpenAPI post-processing: document the error answers every endpoint can give."""

from __future__ import annotations

ERRORS = {
    "400": "Bad input (the message says what); nothing was written.",
    "401": "Authentication required.",
    "403": "Not allowed (staff only).",
    "404": "Not found.",
    "429": "Rate limit reached; see Retry-After.",
    "503": "Temporarily unavailable (e.g. the database is restarting); see Retry-After.",
}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular hook: every operation documents 400/401/403/404/429/503 with a JSON `detail`."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorDetail"] = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                responses.setdefault(code, {"description": description, "content": body})
    return result
