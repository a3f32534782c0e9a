-- depends: 0001_publisher
-- The worker pipeline: what a worker (or the one that takes a stuck job over) needs to commit the
-- spend and re-broadcast the very same transaction after a crash, and to judge whether it is dead.

ALTER TABLE jobs
    -- The utxo service lease's fencing token (CommitSpend / ReportConflict under the lease).
    ADD COLUMN utxo_fencing_token bigint,
    -- The spent pool output, so the stored raw tx can be re-sent as Extended Format (BRC-30).
    ADD COLUMN funding_satoshis  bigint CHECK (funding_satoshis > 0),
    ADD COLUMN funding_script    bytea,
    -- Signer key id owning the change output (empty: the transaction has no change).
    ADD COLUMN change_key_id     text NOT NULL DEFAULT '',
    -- CommitSpend of the current transaction went through (false: redo it before broadcasting).
    ADD COLUMN spend_committed   boolean NOT NULL DEFAULT false,
    -- Transactions the network reported as spending the same input (evidence for "proven dead").
    ADD COLUMN competing_txids   text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT jobs_funding_complete CHECK ((funding_txid IS NULL) = (funding_satoshis IS NULL));

-- SENT jobs are polled for confirmation when next_attempt_at comes (callbacks usually come first).
CREATE INDEX jobs_sent_due ON jobs (next_attempt_at, id) WHERE status = 'sent';
-- Reorg checks look at the jobs confirmed in the last few blocks.
CREATE INDEX jobs_confirmed_height ON jobs (block_height) WHERE status = 'confirmed';
