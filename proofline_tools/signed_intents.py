"""Signed intents as a client makes them: the payload's RFC 8785 (JCS) bytes, a low-S DER ECDSA
signature over their SHA-256, and the compressed public key — the publisher's intent contract.

Used by the dev stack's demo, the benchmarks and the tests, and as a command that prints a
PublishRequest (JSON) for grpcurl's `-d @`:

    .venv/bin/proofline-intent --key-file .devdata/demo-identity.key --record '{"doc":"hello"}' \\
      | grpcurl -plaintext -H 'authorization: Bearer dev-admin-token' -d @ \\
          127.0.0.1:50053 proofline.publisher.v1.PublisherService/Publish
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from bsv.native import NATIVE_MODULE
from google.protobuf import json_format
from proofline.publisher.v1 import publisher_pb2

SECRET_BYTES = 32
DEFAULT_TTL_S = 600


@dataclass(frozen=True, slots=True)
class IdentityKey:
    """An identity key pair held by the client (the publisher only ever sees the public half)."""

    secret: bytes
    pubkey: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> IdentityKey:
        if len(secret) != SECRET_BYTES:
            raise ValueError("an identity secret is 32 bytes")
        return cls(secret, bytes(NATIVE_MODULE.pubkey_from_secret(secret, True)))

    @classmethod
    def generate(cls) -> IdentityKey:
        while True:
            secret = os.urandom(SECRET_BYTES)
            if NATIVE_MODULE.seckey_verify(secret):
                return cls.from_secret(secret)

    @classmethod
    def load_or_create(cls, path: Path) -> IdentityKey:
        """The key kept in `path` (hex, mode 0600), created there first if the file does not exist."""
        if path.exists():
            return cls.from_secret(bytes.fromhex(path.read_text().strip()))
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.secret.hex() + "\n")
        return key

    def sign(self, payload: bytes) -> bytes:
        """DER ECDSA over SHA-256(payload), RFC 6979, low-S."""
        return bytes(NATIVE_MODULE.ecdsa_sign(hashlib.sha256(payload).digest(), self.secret))

    def intent(self, body: dict[str, Any] | bytes) -> publisher_pb2.SignedIntent:
        """An intent over the canonical bytes of `body`, or over raw bytes exactly as given."""
        payload = body if isinstance(body, bytes) else rfc8785.dumps(body)
        return publisher_pb2.SignedIntent(signed_payload=payload, signature=self.sign(payload), pubkey=self.pubkey)


def intent_body(
    record: dict[str, Any],
    *,
    ttl_s: int = DEFAULT_TTL_S,
    nonce: str | None = None,
    issued_at: int | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """The members the publisher requires (nonce, iat, exp, record) plus `aud` when given."""
    iat = int(time.time()) if issued_at is None else issued_at
    body: dict[str, Any] = {"nonce": nonce or uuid.uuid4().hex, "iat": iat, "exp": iat + ttl_s, "record": record}
    if audience is not None:
        body["aud"] = audience
    return body


def publish_request_json(
    intent: publisher_pb2.SignedIntent,
    request_id: str | None = None,
    wait_for: publisher_pb2.JobStatus.ValueType = publisher_pb2.JOB_STATUS_UNSPECIFIED,
) -> str:
    """A PublishRequest in the proto JSON form grpcurl reads (bytes as base64), on one line."""
    request = publisher_pb2.PublishRequest(
        request_id=request_id or f"intent-{uuid.uuid4().hex}", intent=intent, wait_for=wait_for
    )
    return json.dumps(json_format.MessageToDict(request, preserving_proto_field_name=True), separators=(",", ":"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="proofline-intent", description="Sign an intent and print a PublishRequest (JSON) for grpcurl -d @"
    )
    parser.add_argument("--key-file", type=Path, required=True, help="identity secret (hex); created when missing")
    parser.add_argument("--record", default='{"note":"hello from proofline-intent"}', help="the record, a JSON object")
    parser.add_argument("--ttl-s", type=int, default=DEFAULT_TTL_S, help="exp - iat, seconds")
    parser.add_argument("--audience", default=None, help="the `aud` member, when the publisher expects one")
    parser.add_argument("--wait-for-sent", action="store_true", help="ask Publish to answer once the job is SENT")
    parser.add_argument("--print-pubkey", action="store_true", help="print the public key (hex) instead")
    args = parser.parse_args(argv)
    key = IdentityKey.load_or_create(args.key_file)
    if args.print_pubkey:
        print(key.pubkey.hex())
        return 0
    record = json.loads(args.record)
    if not isinstance(record, dict):
        parser.error("--record must be a JSON object")
    intent = key.intent(intent_body(record, ttl_s=args.ttl_s, audience=args.audience))
    wait_for = publisher_pb2.JOB_STATUS_SENT if args.wait_for_sent else publisher_pb2.JOB_STATUS_UNSPECIFIED
    print(publish_request_json(intent, wait_for=wait_for))
    return 0


if __name__ == "__main__":
    sys.exit(main())
