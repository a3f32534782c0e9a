-- wallet schema (money side): accounts, deposit addresses, the double-entry ledger with its balance
-- projection, wallet transactions under one FSM with their audit, the coins the wallet expects in
-- the pool, and the blocks the deposit follower has scanned.

-- Accounts ---------------------------------------------------------------------------------------

CREATE TABLE accounts (
    seq         bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    account_id  text        PRIMARY KEY CHECK (char_length(account_id) BETWEEN 1 AND 64),
    external_id text        NOT NULL UNIQUE CHECK (char_length(external_id) BETWEEN 1 AND 128),
    label       text        NOT NULL DEFAULT '' CHECK (char_length(label) <= 128),
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Deposit addresses: one signer key each, never reused. The locking script index is what block
-- scanning matches every output against.
CREATE TABLE deposit_addresses (
    seq               bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    account_id        text        NOT NULL REFERENCES accounts (account_id),
    address           text        NOT NULL UNIQUE CHECK (char_length(address) BETWEEN 26 AND 64),
    locking_script    bytea       NOT NULL UNIQUE CHECK (length(locking_script) BETWEEN 1 AND 10000),
    key_id            text        NOT NULL UNIQUE CHECK (char_length(key_id) BETWEEN 1 AND 128),
    network           text        NOT NULL CHECK (network IN ('mainnet', 'testnet', 'regtest')),
    label             text        NOT NULL DEFAULT '' CHECK (char_length(label) <= 128),
    received_satoshis bigint      NOT NULL DEFAULT 0 CHECK (received_satoshis BETWEEN 0 AND 2100000000000000),
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX deposit_addresses_by_account ON deposit_addresses (account_id, seq DESC);

-- The ledger -------------------------------------------------------------------------------------
-- Books: per account `available`, `locked`, `pending` (what the wallet owes, never negative) and
-- `deficit` (what the account owes after a reversal it could not cover, never positive); and the
-- house's counterparts: `custody` (minus the coins the pool holds for us), `in_flight` (minus the
-- value of signed sends not yet final), `incoming` (minus the pending deposits), `written_off`
-- (minus the coins the house lost to transactions it did not make). Σ of every book is 0 at every
-- commit, because every entry is.
CREATE TABLE books (
    book_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id text   REFERENCES accounts (account_id),
    kind       text   NOT NULL CHECK (kind IN ('available', 'locked', 'pending', 'deficit',
                                               'custody', 'in_flight', 'incoming', 'written_off')),
    balance    bigint NOT NULL DEFAULT 0
               CHECK (balance BETWEEN -2100000000000000 AND 2100000000000000),
    CHECK ((account_id IS NULL) = (kind IN ('custody', 'in_flight', 'incoming', 'written_off'))),
    CONSTRAINT books_owed_not_negative CHECK (kind NOT IN ('available', 'locked', 'pending') OR balance >= 0),
    CONSTRAINT books_deficit_not_positive CHECK (kind <> 'deficit' OR balance <= 0)
);

CREATE UNIQUE INDEX books_per_account ON books (account_id, kind) WHERE account_id IS NOT NULL;
CREATE UNIQUE INDEX books_of_house ON books (kind) WHERE account_id IS NULL;
INSERT INTO books (account_id, kind)
VALUES (NULL, 'custody'), (NULL, 'in_flight'), (NULL, 'incoming'), (NULL, 'written_off');

CREATE TABLE ledger_entries (
    entry_id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('deposit_seen', 'deposit_credited', 'deposit_dropped',
                                                        'reserve', 'signed', 'finalize', 'release',
                                                        'unsigned', 'reversal', 'written_off')),
    transaction_id text        NOT NULL,
    actor          text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ledger_entries_by_transaction ON ledger_entries (transaction_id, entry_id);

CREATE TABLE postings (
    entry_id bigint NOT NULL REFERENCES ledger_entries (entry_id),
    book_id  bigint NOT NULL REFERENCES books (book_id),
    amount   bigint NOT NULL CHECK (amount <> 0 AND amount BETWEEN -2100000000000000 AND 2100000000000000),
    PRIMARY KEY (entry_id, book_id)
);

CREATE INDEX postings_by_book ON postings (book_id);

-- The projection: every posting moves its book's balance in the same statement, so a balance is
-- always the sum of its postings, and the books' CHECKs (available >= 0) decide every reservation.
CREATE FUNCTION postings_project() RETURNS trigger AS $$
BEGIN
    UPDATE books b SET balance = b.balance + d.amount
    FROM (SELECT book_id, sum(amount)::bigint AS amount FROM new_postings GROUP BY book_id) d
    WHERE b.book_id = d.book_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER postings_projected AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION postings_project();

-- Balanced entries: at commit, the postings of every entry written sum to 0.
CREATE FUNCTION postings_balanced() RETURNS trigger AS $$
DECLARE
    total numeric;
BEGIN
    SELECT coalesce(sum(amount), 0) INTO total FROM postings WHERE entry_id = NEW.entry_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger entry % does not balance (sum %)', NEW.entry_id, total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'postings_balanced';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION postings_balanced();

-- Append-only: history is corrected by new entries, never edited.
CREATE FUNCTION wallet_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION wallet_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_append_only();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION wallet_append_only();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_append_only();

-- Wallet transactions: sends and deposits, one FSM -----------------------------------------------

CREATE TABLE tx_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);

-- The same table as services/wallet/domain/fsm.py (a test compares them).
INSERT INTO tx_transitions (from_status, to_status) VALUES
    ('pending', 'sending'), ('pending', 'failed'),
    ('sending', 'unconfirmed'), ('sending', 'pending'), ('sending', 'failed'),
    ('unconfirmed', 'confirmed'), ('unconfirmed', 'failed'),
    ('confirmed', 'reorging'),
    ('reorging', 'unconfirmed'), ('reorging', 'confirmed');

CREATE SEQUENCE wallet_fences;

CREATE TABLE wallet_txs (
    seq                      bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    transaction_id           text        PRIMARY KEY CHECK (char_length(transaction_id) BETWEEN 1 AND 64),
    account_id               text        NOT NULL REFERENCES accounts (account_id),
    direction                text        NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    status                   text        NOT NULL CHECK (status IN ('pending', 'sending', 'unconfirmed',
                                                                    'confirmed', 'reorging', 'failed')),
    txid                     text        CHECK (txid ~ '^[0-9a-f]{64}$'),
    amount_satoshis          bigint      NOT NULL CHECK (amount_satoshis BETWEEN 0 AND 2100000000000000),
    -- Sends: what the account is debited (amount + fee, or amount when the recipient pays the fee),
    -- the fee reserved at intake, the fee of the signed transaction.
    debit_satoshis           bigint      NOT NULL DEFAULT 0 CHECK (debit_satoshis BETWEEN 0 AND 2100000000000000),
    reserved_fee_satoshis    bigint      NOT NULL DEFAULT 0
                             CHECK (reserved_fee_satoshis BETWEEN 0 AND 2100000000000000),
    fee_satoshis             bigint      NOT NULL DEFAULT 0 CHECK (fee_satoshis BETWEEN 0 AND 2100000000000000),
    fee_rate_satoshis_per_kb bigint      NOT NULL DEFAULT 0
                             CHECK (fee_rate_satoshis_per_kb BETWEEN 0 AND 2100000000000000),
    max_fee_satoshis         bigint      NOT NULL DEFAULT 0 CHECK (max_fee_satoshis BETWEEN 0 AND 2100000000000000),
    subtract_fee             boolean     NOT NULL DEFAULT false,
    address                  text        NOT NULL DEFAULT '',
    to_script                bytea,
    memo                     text        NOT NULL DEFAULT '' CHECK (char_length(memo) <= 256),
    request_id               text        NOT NULL DEFAULT '',
    caller_id                text        NOT NULL DEFAULT '',
    required_confirmations   integer     NOT NULL CHECK (required_confirmations BETWEEN 0 AND 10000),
    coinbase                 boolean     NOT NULL DEFAULT false,
    block_hash               text        CHECK (block_hash ~ '^[0-9a-f]{64}$'),
    block_height             bigint      CHECK (block_height BETWEEN 0 AND 4294967295),
    merkle_path              text,
    raw_tx                   bytea,
    failure_reason           text        NOT NULL DEFAULT '',
    failure_detail           text        NOT NULL DEFAULT '' CHECK (char_length(failure_detail) <= 1024),
    broadcast_attempts       integer     NOT NULL DEFAULT 0 CHECK (broadcast_attempts BETWEEN 0 AND 1000000),
    builds                   integer     NOT NULL DEFAULT 0 CHECK (builds BETWEEN 0 AND 1000000),
    -- The pool lease holding the signed transaction's inputs, and whether CommitSpend went through.
    pool_lease_id            text,
    pool_lease_token         bigint      CHECK (pool_lease_token >= 0),
    spend_committed          boolean     NOT NULL DEFAULT false,
    -- Deposits: since when a check found the transaction neither mined nor in the mempool.
    missing_since            timestamptz,
    -- Whether the ledger has finalized the send (UNCONFIRMED reached once).
    finalized                boolean     NOT NULL DEFAULT false,
    credited                 boolean     NOT NULL DEFAULT false,
    -- Background work: who holds the row (fencing token from wallet_fences) and until when.
    lease_owner              text,
    fence                    bigint      NOT NULL DEFAULT 0 CHECK (fence >= 0),
    lease_until              timestamptz,
    next_attempt_at          timestamptz NOT NULL DEFAULT now(),
    row_version              bigint      NOT NULL DEFAULT 1 CHECK (row_version >= 1),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    accepted_at              timestamptz,
    confirmed_at             timestamptz,
    CHECK (direction = 'outgoing' OR (request_id = '' AND debit_satoshis = 0)),
    CHECK (status NOT IN ('sending', 'unconfirmed', 'confirmed', 'reorging') OR txid IS NOT NULL),
    CHECK (status <> 'sending' OR raw_tx IS NOT NULL)
);

CREATE UNIQUE INDEX wallet_txs_send_request ON wallet_txs (account_id, caller_id, request_id)
    WHERE direction = 'outgoing';
CREATE UNIQUE INDEX wallet_txs_deposit ON wallet_txs (account_id, txid) WHERE direction = 'incoming';
CREATE INDEX wallet_txs_by_account ON wallet_txs (account_id, seq DESC);
CREATE INDEX wallet_txs_by_txid ON wallet_txs (txid) WHERE txid IS NOT NULL;
CREATE INDEX wallet_txs_by_block ON wallet_txs (block_hash) WHERE block_hash IS NOT NULL;
CREATE INDEX wallet_txs_daily ON wallet_txs (account_id, created_at) WHERE direction = 'outgoing';
CREATE INDEX wallet_txs_work ON wallet_txs (next_attempt_at)
    WHERE status IN ('pending', 'sending', 'unconfirmed', 'reorging');

CREATE TRIGGER wallet_txs_updated_at BEFORE UPDATE ON wallet_txs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION wallet_txs_check_transition() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tx_transitions WHERE from_status = OLD.status AND to_status = NEW.status) THEN
        RAISE EXCEPTION 'transaction %: % -> % is not a transition of the FSM', OLD.transaction_id, OLD.status,
            NEW.status USING ERRCODE = 'check_violation', CONSTRAINT = 'wallet_txs_fsm';
    END IF;
    NEW.row_version := OLD.row_version + 1;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER wallet_txs_fsm BEFORE UPDATE OF status ON wallet_txs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION wallet_txs_check_transition();

-- The audit of every status change, written in the same transaction as the change.
CREATE TABLE tx_audit (
    audit_id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id text        NOT NULL,
    from_status    text,
    to_status      text        NOT NULL,
    txid           text,
    actor          text        NOT NULL,
    request_id     text        NOT NULL DEFAULT '',
    reason         text        NOT NULL DEFAULT '',
    detail         text        NOT NULL DEFAULT '' CHECK (char_length(detail) <= 1024),
    xact_id        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tx_audit_by_transaction ON tx_audit (transaction_id, audit_id);
CREATE INDEX tx_audit_by_txid ON tx_audit (txid) WHERE txid IS NOT NULL;

CREATE TRIGGER tx_audit_append_only BEFORE UPDATE OR DELETE ON tx_audit
    FOR EACH ROW EXECUTE FUNCTION wallet_append_only();
CREATE TRIGGER tx_audit_no_truncate BEFORE TRUNCATE ON tx_audit
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_append_only();

CREATE FUNCTION wallet_txs_require_audit() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM tx_audit a
        WHERE a.transaction_id = NEW.transaction_id AND a.xact_id = pg_current_xact_id()
          AND a.to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'transaction % moved to % without an audit row in the same transaction',
            NEW.transaction_id, NEW.status USING ERRCODE = 'check_violation', CONSTRAINT = 'wallet_txs_audited';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER wallet_txs_creation_audited AFTER INSERT ON wallet_txs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION wallet_txs_require_audit();
CREATE CONSTRAINT TRIGGER wallet_txs_status_change_audited AFTER UPDATE ON wallet_txs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION wallet_txs_require_audit();

-- Wake-ups for WatchTransaction and wait_for (PostgreSQL stays the truth: listeners re-read).
CREATE FUNCTION wallet_txs_notify_changes() RETURNS trigger AS $$
DECLARE
    chunk text;
BEGIN
    FOR chunk IN
        SELECT string_agg(c.transaction_id, ',')
        FROM (
            SELECT n.transaction_id, row_number() OVER () AS position
            FROM changed_new n JOIN changed_old o ON o.transaction_id = n.transaction_id
            WHERE n.status IS DISTINCT FROM o.status
               OR n.txid IS DISTINCT FROM o.txid
               OR n.block_hash IS DISTINCT FROM o.block_hash
               OR n.failure_reason IS DISTINCT FROM o.failure_reason
        ) c
        GROUP BY (c.position - 1) / 100
    LOOP
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_tx_changes', chunk);
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER wallet_txs_notify AFTER UPDATE ON wallet_txs
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_txs_notify_changes();

-- Coins ------------------------------------------------------------------------------------------
-- Every output the wallet put into the pool (credited deposits, send change) and what spent it:
-- the wallet's own side of the reconciliation with the pool.
CREATE TABLE wallet_coins (
    txid           text        NOT NULL CHECK (txid ~ '^[0-9a-f]{64}$'),
    vout           bigint      NOT NULL CHECK (vout BETWEEN 0 AND 4294967295),
    satoshis       bigint      NOT NULL CHECK (satoshis BETWEEN 1 AND 2100000000000000),
    locking_script bytea       NOT NULL,
    key_id         text        NOT NULL,
    origin         text        NOT NULL CHECK (origin IN ('deposit', 'change')),
    transaction_id text        NOT NULL,
    -- The send whose signed transaction spends it; NULL while unspent.
    spent_by       text,
    spent_txid     text        CHECK (spent_txid ~ '^[0-9a-f]{64}$'),
    -- The coin's own transaction proved dead (e.g. the change of a send that never made it).
    dead           boolean     NOT NULL DEFAULT false,
    -- A send of ours failed on it (double spend, missing inputs): the pool decides on chain evidence
    -- whether it is still ours.
    suspect        boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (txid, vout),
    CHECK (spent_by = 'outside' OR (spent_by IS NULL) = (spent_txid IS NULL))
);

CREATE INDEX wallet_coins_by_spender ON wallet_coins (spent_by) WHERE spent_by IS NOT NULL;
CREATE INDEX wallet_coins_of_transaction ON wallet_coins (transaction_id);
CREATE INDEX wallet_coins_suspect ON wallet_coins (txid, vout) WHERE suspect;

-- Outputs of incoming transactions paying deposit addresses.
CREATE TABLE deposit_outputs (
    txid           text    NOT NULL CHECK (txid ~ '^[0-9a-f]{64}$'),
    vout           bigint  NOT NULL CHECK (vout BETWEEN 0 AND 4294967295),
    transaction_id text    NOT NULL REFERENCES wallet_txs (transaction_id),
    address        text    NOT NULL REFERENCES deposit_addresses (address),
    satoshis       bigint  NOT NULL CHECK (satoshis BETWEEN 1 AND 2100000000000000),
    PRIMARY KEY (txid, vout)
);

CREATE INDEX deposit_outputs_by_transaction ON deposit_outputs (transaction_id);

-- The chain as the follower saw it: one row per main-chain block scanned (the per-block undo record
-- is the wallet transactions whose block_hash names it).
CREATE TABLE scanned_blocks (
    height        bigint      PRIMARY KEY CHECK (height BETWEEN 0 AND 4294967295),
    block_hash    text        NOT NULL UNIQUE CHECK (block_hash ~ '^[0-9a-f]{64}$'),
    previous_hash text        NOT NULL,
    merkle_root   text        NOT NULL,
    outputs       bigint      NOT NULL DEFAULT 0 CHECK (outputs >= 0),
    matched       bigint      NOT NULL DEFAULT 0 CHECK (matched >= 0),
    scanned_at    timestamptz NOT NULL DEFAULT now()
);
