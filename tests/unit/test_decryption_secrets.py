"""A key or passphrase sent to open an encrypted backup is a secret in every body that
carries it: the audit log and the OpenAPI document see only that it was set."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from mackuper.schemas.api import ExtractBody, RestoreBody, TreeBody
from mackuper.web.audit import public_view

PASSPHRASE = "  correct horse battery staple  "
IDENTITY = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (RestoreBody, {"artifact_id": 1}),
        (TreeBody, {"path": "docs"}),
        (ExtractBody, {"path": "docs/readme.txt"}),
    ],
)
def test_decryption_keys_are_secrets_in_every_body(
    model: type[BaseModel], fields: dict[str, object]
) -> None:
    body = model.model_validate(
        {**fields, "decryption": {"passphrase": PASSPHRASE, "identity": IDENTITY}}
    )
    assert public_view(body)["decryption"] == {"identity": "(set)", "passphrase": "(set)"}
    assert body.decryption.passphrase == PASSPHRASE  # type: ignore[attr-defined]
    schema = model.model_json_schema()
    keys = schema["$defs"]["DecryptionKeys"]["properties"]
    assert keys["passphrase"]["writeOnly"] is True
    assert keys["identity"]["writeOnly"] is True
