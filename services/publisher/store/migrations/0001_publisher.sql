-- publisher schema: registered identity keys, publish jobs (one per accepted intent) with the
-- columns the worker pipeline needs, and the append-only audit of both.

-- Identity keys ---------------------------------------------------------------------------------

CREATE TABLE identities (
    -- Registration order, for "oldest first" listing with a stable cursor.
    seq            bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    pubkey         bytea       PRIMARY KEY CHECK (length(pubkey) = 33 AND get_byte(pubkey, 0) IN (2, 3)),
    label          text        NOT NULL CHECK (char_length(label) BETWEEN 1 AND 128),
    owner_ref      text        NOT NULL DEFAULT '' CHECK (char_length(owner_ref) <= 128),
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    registered_by  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    revoked_by     text,
    revoke_reason  text        NOT NULL DEFAULT '' CHECK (char_length(revoke_reason) <= 512),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revoked_by IS NOT NULL))
);

CREATE INDEX identities_by_owner ON identities (owner_ref, seq);

CREATE TRIGGER identities_updated_at BEFORE UPDATE ON identities
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Revocation is final: a leaked key must stay dead.
CREATE FUNCTION identities_refuse_unrevoke() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'identity % is revoked; revocation is final', encode(OLD.pubkey, 'hex')
        USING ERRCODE = 'check_violation', CONSTRAINT = 'identities_revocation_final';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER identities_revocation_final BEFORE UPDATE ON identities
    FOR EACH ROW WHEN (OLD.status = 'revoked' AND NEW.status IS DISTINCT FROM 'revoked')
    EXECUTE FUNCTION identities_refuse_unrevoke();

CREATE TABLE identity_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    pubkey      bytea       NOT NULL,
    action      text        NOT NULL CHECK (action IN ('registered', 'revoked')),
    actor       text        NOT NULL,
    request_id  text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    cancelled_jobs integer  NOT NULL DEFAULT 0
);

CREATE INDEX identity_events_by_key ON identity_events (pubkey, id);

-- Publish jobs ----------------------------------------------------------------------------------

-- Allowed status changes (publisher.proto, JobStatus). The code's FSM is tested against this
-- table, and the trigger below makes the database refuse any other move.
CREATE TABLE job_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);

INSERT INTO job_transitions (from_status, to_status) VALUES
    ('queued', 'processing'),
    ('queued', 'failed'),
    ('processing', 'queued'),
    ('processing', 'signed'),
    ('processing', 'failed'),
    ('signed', 'sent'),
    ('signed', 'processing'),
    ('signed', 'failed'),
    ('sent', 'confirmed'),
    ('sent', 'processing'),
    ('sent', 'failed'),
    ('confirmed', 'sent');

-- Strictly increasing tokens for worker claims (fencing: a write must carry the current token).
CREATE SEQUENCE job_lease_tokens AS bigint;

CREATE TABLE jobs (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id             text        NOT NULL UNIQUE CHECK (job_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- The intent, exactly as accepted.
    identity_pubkey    bytea       NOT NULL REFERENCES identities (pubkey),
    intent_digest      bytea       NOT NULL CHECK (length(intent_digest) = 32),
    nonce              text        NOT NULL CHECK (nonce ~ '^[A-Za-z0-9_-]{16,64}$'),
    signed_payload     bytea       NOT NULL,
    signature          bytea       NOT NULL,
    -- JCS bytes of the payload's "record" member: what the worker puts on chain (or hashes).
    record             bytea       NOT NULL,
    intent_issued_at   timestamptz NOT NULL,
    intent_expires_at  timestamptz NOT NULL,
    status             text        NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'processing', 'signed', 'sent', 'confirmed', 'failed')),
    -- Worker pipeline. A claim sets lease_owner/lease_token/lease_expires_at; a job PROCESSING or
    -- SIGNED whose lease expired is stuck and any worker may claim it again (new token).
    lease_owner        text,
    lease_token        bigint,
    lease_expires_at   timestamptz,
    -- Backoff: a job is not claimed before this time (chain unavailable, pool exhausted, ...).
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    batch_id           text        CHECK (char_length(batch_id) <= 64),
    -- Broadcast attempts, all transactions of the job included; and how many were built.
    attempts           integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    builds             integer     NOT NULL DEFAULT 0 CHECK (builds >= 0),
    -- The pool UTXO paying the current transaction and the utxo service lease that holds it.
    funding_txid       text        CHECK (funding_txid ~ '^[0-9a-f]{64}$'),
    funding_vout       integer     CHECK (funding_vout >= 0),
    utxo_lease_id      text,
    -- The current transaction: stored (SIGNED) before its first broadcast.
    txid               text        CHECK (txid ~ '^[0-9a-f]{64}$'),
    raw_tx             bytea,
    fee_satoshis       bigint      NOT NULL DEFAULT 0 CHECK (fee_satoshis >= 0),
    block_hash         text        CHECK (block_hash ~ '^[0-9a-f]{64}$'),
    block_height       integer     CHECK (block_height >= 0),
    merkle_bump        bytea,
    error_reason       text        NOT NULL DEFAULT '' CHECK (error_reason ~ '^[A-Z0-9_]{0,64}$'),
    error_detail       text        NOT NULL DEFAULT '' CHECK (char_length(error_detail) <= 4096),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    signed_at          timestamptz,
    sent_at            timestamptz,
    confirmed_at       timestamptz,
    UNIQUE (identity_pubkey, intent_digest),
    -- The truth behind NONCE_REPLAYED (Redis is only the fast path).
    UNIQUE (identity_pubkey, nonce),
    CHECK (intent_expires_at > intent_issued_at),
    CHECK (status NOT IN ('signed', 'sent', 'confirmed')
           OR (txid IS NOT NULL AND raw_tx IS NOT NULL AND signed_at IS NOT NULL)),
    CHECK (status NOT IN ('sent', 'confirmed') OR sent_at IS NOT NULL),
    CHECK ((status = 'confirmed')
           = (confirmed_at IS NOT NULL AND merkle_bump IS NOT NULL AND block_hash IS NOT NULL)),
    CHECK ((block_hash IS NULL) = (block_height IS NULL)),
    CHECK (status <> 'processing' OR lease_token IS NOT NULL),
    CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL)),
    CHECK ((funding_txid IS NULL) = (funding_vout IS NULL)),
    CHECK (status <> 'failed' OR error_reason <> '')
);

CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION jobs_check_transition() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM job_transitions t WHERE t.from_status = OLD.status AND t.to_status = NEW.status) THEN
        RAISE EXCEPTION 'job %: % -> % is not an allowed transition', OLD.job_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_allowed_transition';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_allowed_transition BEFORE UPDATE ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION jobs_check_transition();

-- Claiming: oldest due QUEUED jobs first; SIGNED jobs waiting for a (re)broadcast; stuck leases.
CREATE INDEX jobs_queued ON jobs (next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX jobs_signed ON jobs (next_attempt_at, id) WHERE status = 'signed';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status IN ('processing', 'signed');
-- Following SENT jobs to confirmation, and reorgs by block.
CREATE INDEX jobs_sent ON jobs (sent_at, id) WHERE status = 'sent';
CREATE INDEX jobs_by_block ON jobs (block_hash) WHERE block_hash IS NOT NULL;
-- ListJobs: newest first, optionally per identity / status / txid / batch.
CREATE INDEX jobs_newest ON jobs (created_at DESC, job_id DESC);
CREATE INDEX jobs_by_identity ON jobs (identity_pubkey, created_at DESC, job_id DESC);
CREATE INDEX jobs_by_status ON jobs (status, created_at DESC, job_id DESC);
CREATE INDEX jobs_by_txid ON jobs (txid) WHERE txid IS NOT NULL;
CREATE INDEX jobs_by_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL;

-- Audit: one row per status change (and per creation, from_status ''), written in the same
-- transaction as the change. Lease changes without a status change (reclaims) are recorded too.
CREATE TABLE job_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    job_id      bigint      NOT NULL REFERENCES jobs (id),
    from_status text        NOT NULL,
    to_status   text        NOT NULL,
    txid        text        NOT NULL DEFAULT '',
    actor       text        NOT NULL CHECK (actor <> ''),
    reason      text        NOT NULL DEFAULT '',
    detail      text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    xact_id     xid8        NOT NULL DEFAULT pg_current_xact_id()
);

CREATE INDEX job_events_by_job ON job_events (job_id, id);
CREATE INDEX job_events_at ON job_events USING brin (at);

CREATE FUNCTION audit_is_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER job_events_append_only BEFORE UPDATE OR DELETE ON job_events
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER job_events_no_truncate BEFORE TRUNCATE ON job_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER identity_events_append_only BEFORE UPDATE OR DELETE ON identity_events
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();
CREATE TRIGGER identity_events_no_truncate BEFORE TRUNCATE ON identity_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();

-- At commit, every job created or moved to a new status in the transaction must have the audit
-- row for that move from the same transaction; otherwise the whole transaction fails.
CREATE FUNCTION jobs_require_audit() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM job_events e
        WHERE e.job_id = NEW.id AND e.xact_id = pg_current_xact_id() AND e.to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'job % moved to % without an audit row in the same transaction', NEW.job_id, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_status_change_audited';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER jobs_creation_audited AFTER INSERT ON jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION jobs_require_audit();
CREATE CONSTRAINT TRIGGER jobs_status_change_audited AFTER UPDATE ON jobs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION jobs_require_audit();

-- Wake-ups for WatchJob and wait_for: after every statement that changed a job's status, txid or
-- block, NOTIFY "<schema>_job_changes" with the changed job ids (comma-separated, 100 per
-- message to stay under the 8000-byte payload limit). PostgreSQL stays the truth: listeners re-read.
CREATE FUNCTION jobs_notify_changes() RETURNS trigger AS $$
DECLARE
    chunk text;
BEGIN
    FOR chunk IN
        SELECT string_agg(c.job_id, ',')
        FROM (
            SELECT n.job_id, row_number() OVER () AS position
            FROM changed_new n JOIN changed_old o ON o.id = n.id
            WHERE n.status IS DISTINCT FROM o.status
               OR n.txid IS DISTINCT FROM o.txid
               OR n.block_hash IS DISTINCT FROM o.block_hash
        ) c
        GROUP BY (c.position - 1) / 100
    LOOP
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_job_changes', chunk);
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_notify AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_changes();
