-- utxo schema: the pool of outpoints, leases with fencing tokens, the event history of every
-- outpoint, the chain tip the pool last saw, and the persisted maintenance state.

-- Recorded answers arrive zlib-compressed (see domain/codec.py): no second compression attempt.
ALTER TABLE idempotency_keys ALTER COLUMN response SET STORAGE EXTERNAL;

-- One strictly increasing sequence for every lease's fencing token.
CREATE SEQUENCE fencing_tokens AS bigint;
-- Tokens of the distributed maintenance locks (drawn before each lock attempt).
CREATE SEQUENCE maintenance_fences AS bigint;

CREATE TABLE leases (
    fencing_token  bigint      PRIMARY KEY DEFAULT nextval('fencing_tokens'),
    lease_id       text        NOT NULL UNIQUE CHECK (length(lease_id) BETWEEN 1 AND 64),
    caller_id      text        NOT NULL,
    holder         text        NOT NULL DEFAULT '' CHECK (length(holder) <= 128),
    purpose        text        NOT NULL CHECK (purpose IN ('publish', 'funding', 'change', 'wallet')),
    strategy       text        NOT NULL CHECK (strategy IN ('smallest_first', 'largest_first')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER leases_updated_at BEFORE UPDATE ON leases
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per outpoint. The lease that holds an outpoint lives in the row itself (one slot:
-- `fencing_token` + `lease_expires_at`), so an outpoint cannot belong to two leases at once; the
-- trigger below refuses any write that would hand a live reservation to another lease.
CREATE TABLE utxos (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid             text        NOT NULL CHECK (txid ~ '^[0-9a-f]{64}$'),
    vout             integer     NOT NULL CHECK (vout >= 0),
    satoshis         bigint      NOT NULL CHECK (satoshis > 0),
    locking_script   bytea       NOT NULL CHECK (length(locking_script) BETWEEN 1 AND 10000),
    owner_key_id     text        NOT NULL CHECK (owner_key_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    purpose          text        NOT NULL CHECK (purpose IN ('publish', 'funding', 'change', 'wallet')),
    status           text        NOT NULL
        CHECK (status IN ('unconfirmed', 'available', 'reserved', 'spent', 'dirty', 'invalid')),
    -- Token of the last lease that reserved the outpoint; cleared by an explicit release. Kept when
    -- an expired reservation is reaped, so the late holder keeps its rights until someone else
    -- leases the outpoint. No foreign key to leases: its per-row check cost ~12% of lease
    -- throughput, and only this service writes the column (always with a token it just issued).
    fencing_token    bigint,
    lease_expires_at timestamptz,
    -- SPENT: the spending transaction (empty when the chain reports a spend by a transaction the
    -- pool does not know); DIRTY: the transaction whose failure was reported.
    spent_by_txid    text        CHECK (spent_by_txid ~ '^[0-9a-f]{64}$'),
    spent_at         timestamptz,
    competing_txids  text[]      NOT NULL DEFAULT '{}',
    status_reason    text        NOT NULL DEFAULT '',
    status_detail    text        NOT NULL DEFAULT '' CHECK (length(status_detail) <= 1024),
    block_height     integer     CHECK (block_height > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (txid, vout),
    CHECK ((status = 'reserved') = (lease_expires_at IS NOT NULL)),
    CHECK (status <> 'reserved' OR fencing_token IS NOT NULL),
    CHECK (status <> 'spent' OR spent_at IS NOT NULL),
    CHECK (status <> 'dirty' OR status_reason <> '')
);

CREATE TRIGGER utxos_updated_at BEFORE UPDATE ON utxos
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION utxos_refuse_lease_violation() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'outpoint %:% is reserved by live lease % until %; refusing %',
        OLD.txid, OLD.vout, OLD.fencing_token, OLD.lease_expires_at,
        CASE WHEN NEW.fencing_token < OLD.fencing_token THEN 'an older fencing token'
             ELSE 'to hand it to another holder' END
        USING ERRCODE = 'check_violation', CONSTRAINT = 'utxos_single_live_lease';
END;
$$ LANGUAGE plpgsql;

-- The database itself refuses (a) giving an outpoint that is RESERVED under a live lease to
-- another lease, (b) reaping a live reservation (back to AVAILABLE while keeping the token), and
-- (c) moving a fencing token backwards. The WHEN clause keeps the normal path free of plpgsql.
CREATE TRIGGER utxos_single_live_lease BEFORE UPDATE ON utxos
    FOR EACH ROW
    WHEN (
        (OLD.status = 'reserved' AND OLD.lease_expires_at > now()
         AND ((NEW.fencing_token IS NOT NULL AND NEW.fencing_token IS DISTINCT FROM OLD.fencing_token)
              OR (NEW.status = 'available' AND NEW.fencing_token IS NOT DISTINCT FROM OLD.fencing_token)))
        OR NEW.fencing_token < OLD.fencing_token
    )
    EXECUTE FUNCTION utxos_refuse_lease_violation();

-- Leasing walks one of these in strategy order; only AVAILABLE rows are in them, so a lease or a
-- spend removes the row instead of adding index entries.
CREATE INDEX utxos_available_smallest ON utxos (purpose, satoshis, id) WHERE status = 'available';
CREATE INDEX utxos_available_largest ON utxos (purpose, satoshis DESC, id) WHERE status = 'available';
-- The outpoints a lease still holds.
CREATE INDEX utxos_carrying_token ON utxos (fencing_token)
    WHERE status IN ('reserved', 'available') AND fencing_token IS NOT NULL;
CREATE INDEX utxos_reserved_expiry ON utxos (lease_expires_at) WHERE status = 'reserved';
-- What sync has to look at besides the chain's list: outputs waiting for the chain.
CREATE INDEX utxos_unsettled ON utxos (owner_key_id, id) WHERE status IN ('unconfirmed', 'dirty');

-- The history of every outpoint: one row per state change, written by the same statement as the
-- change. `fencing_token` is the token of the lease that acted (NULL when no lease did). Indexed by
-- token (a lease's history) and by time only: an index per outpoint cost ~10% of lease throughput.
CREATE TABLE utxo_events (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    utxo_id          bigint      NOT NULL,
    kind             text        NOT NULL CHECK (kind IN (
        'added', 'lease', 'renew', 'release', 'reap', 'commit', 'dirty', 'invalid', 'confirmed', 'chain'
    )),
    fencing_token    bigint,
    lease_expires_at timestamptz,
    txid             text,
    from_status      text        NOT NULL DEFAULT '',
    to_status        text        NOT NULL,
    reason           text        NOT NULL DEFAULT '',
    caller_id        text        NOT NULL DEFAULT ''
);

CREATE INDEX utxo_events_by_token ON utxo_events (fencing_token) WHERE fencing_token IS NOT NULL;
CREATE INDEX utxo_events_at ON utxo_events USING brin (at);

-- The chain tip the pool last saw (one row).
CREATE TABLE chain_tip (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    height      integer     NOT NULL CHECK (height >= 0),
    block_hash  text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER chain_tip_updated_at BEFORE UPDATE ON chain_tip
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Persisted maintenance state per action (sync, split, sweep): last run and the split cooldown.
-- `fence` is the maintenance lease token of the last writer; a writer with an older token is refused.
CREATE TABLE maintenance_state (
    action          text        PRIMARY KEY CHECK (action IN ('sync', 'split', 'sweep', 'reap')),
    last_run_at     timestamptz,
    last_outcome    text        NOT NULL DEFAULT '',
    cooldown_until  timestamptz,
    fence           bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER maintenance_state_updated_at BEFORE UPDATE ON maintenance_state
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

INSERT INTO maintenance_state (action) VALUES ('sync'), ('split'), ('sweep'), ('reap');

-- Signed maintenance transactions (split, sweep), stored in the same transaction that commits
-- their inputs and before the first broadcast, so a crash or an unreachable chain never loses
-- them: PENDING ones are broadcast again by the next maintenance run.
CREATE TABLE maintenance_txs (
    txid        text        PRIMARY KEY CHECK (txid ~ '^[0-9a-f]{64}$'),
    action      text        NOT NULL CHECK (action IN ('split', 'sweep')),
    extended_tx bytea       NOT NULL,
    state       text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'rejected')),
    attempts    integer     NOT NULL DEFAULT 0,
    detail      text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX maintenance_txs_pending ON maintenance_txs (created_at) WHERE state = 'pending';

CREATE TRIGGER maintenance_txs_updated_at BEFORE UPDATE ON maintenance_txs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
