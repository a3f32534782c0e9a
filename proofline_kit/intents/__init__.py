"""Signed intents, the publisher's intent contract (publisher.proto, SignedIntent), as pure checks:
strict DER low-S secp256k1 signatures (`signatures`), RFC 8785 JCS payloads (`canonical`), the record
schema (`records`) and the checks in the contract's order (`checks`). The publisher runs them on
every intent; the wallet runs the same ones on a RegisterIdentity consent proof."""
