-- Shared objects every service schema gets: the updated_at trigger function and the
-- idempotency table behind `request_id`.

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE idempotency_keys (
    caller_id    text        NOT NULL,
    method       text        NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller_id, method, request_id)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
