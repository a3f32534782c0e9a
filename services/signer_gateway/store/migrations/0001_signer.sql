-- signer_gateway schema: keys, the per-key spend ledger behind daily limits, and the signing audit.

CREATE TABLE keys (
    key_id              text        PRIMARY KEY,
    backend             text        NOT NULL CHECK (backend IN ('local', 'external_kms')),
    public_key          bytea       NOT NULL CHECK (length(public_key) = 33),
    -- AES-256-GCM ciphertext of the private key (local backend only); never plaintext.
    sealed_secret       bytea,
    sealed_nonce        bytea,
    master_key_version  integer,
    policy              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((backend = 'local') = (sealed_secret IS NOT NULL AND sealed_nonce IS NOT NULL
                                  AND master_key_version IS NOT NULL))
);

CREATE TRIGGER keys_updated_at BEFORE UPDATE ON keys
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Amounts sent away by transactions a key signed; the daily limit sums the last 24 hours.
CREATE TABLE key_spends (
    key_id     text        NOT NULL REFERENCES keys (key_id),
    txid       text        NOT NULL,
    satoshis   bigint      NOT NULL CHECK (satoshis >= 0),
    signed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, txid)
);

CREATE INDEX key_spends_by_time ON key_spends (key_id, signed_at);

-- Append-only: every signing attempt that reached a key, with its outcome.
CREATE TABLE signing_audit (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    caller_id   text        NOT NULL,
    request_id  text        NOT NULL,
    key_id      text        NOT NULL,
    digest      bytea,
    txid        text,
    outcome     text        NOT NULL CHECK (outcome IN ('signed', 'denied', 'failed')),
    reason      text        NOT NULL DEFAULT ''
);

CREATE INDEX signing_audit_by_key ON signing_audit (key_id, at);

CREATE FUNCTION signing_audit_is_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'signing_audit is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER signing_audit_append_only BEFORE UPDATE OR DELETE ON signing_audit
    FOR EACH ROW EXECUTE FUNCTION signing_audit_is_append_only();
CREATE TRIGGER signing_audit_no_truncate BEFORE TRUNCATE ON signing_audit
    FOR EACH STATEMENT EXECUTE FUNCTION signing_audit_is_append_only();
