-- depends: 0006_exact_leases

-- Spending our own change before it is mined (ReportAccepted). `unconfirmed_depth` is 0 for a coin
-- the pool holds on chain evidence and n >= 1 for an output of our own transaction that the network
-- accepted but that the pool has not seen mined: the length of the unmined chain of our transactions
-- ending in it (1 + the greatest depth among the transaction's inputs, kept on the SPENT inputs). A
-- sync that sees the row in a block sets it back to 0. UTXO_MAX_UNCONFIRMED_DEPTH (at most 1000)
-- bounds it, so smallint is enough.
ALTER TABLE utxos ADD COLUMN unconfirmed_depth smallint NOT NULL DEFAULT 0
    CONSTRAINT utxos_unconfirmed_depth_range CHECK (unconfirmed_depth >= 0);

-- Leasing walks these in (depth, strategy) order: a lease takes shallower coins first, and the
-- default lease (depth 0 only) is an equality on the first two columns followed by the strategy
-- order, the same index range scan as before. Same number of indexes as 0001's, two bytes wider.
DROP INDEX utxos_available_smallest, utxos_available_largest;
CREATE INDEX utxos_available_smallest ON utxos (purpose, unconfirmed_depth, satoshis, id)
    WHERE status = 'available';
CREATE INDEX utxos_available_largest ON utxos (purpose, unconfirmed_depth, satoshis DESC, id)
    WHERE status = 'available';

-- A transaction's inputs in the pool (ReportAccepted finds committed spends by their txid; the
-- ReportConflict cascade finds the descendants' inputs). spent_by_txid is set only on SPENT and
-- DIRTY rows (and kept on those a dead ancestor invalidates), so the index holds those alone.
CREATE INDEX utxos_spent_by ON utxos (spent_by_txid) WHERE spent_by_txid IS NOT NULL;

-- The event of ReportAccepted (UNCONFIRMED -> AVAILABLE at depth n). NOT VALID: every existing row
-- passed the stricter check this replaces, so the events table is not scanned; new rows are checked.
ALTER TABLE utxo_events
    DROP CONSTRAINT utxo_events_kind_check,
    ADD CONSTRAINT utxo_events_kind_check CHECK (kind IN (
        'added', 'lease', 'renew', 'release', 'reap', 'commit', 'dirty', 'invalid', 'confirmed', 'chain',
        'accepted'
    )) NOT VALID;
