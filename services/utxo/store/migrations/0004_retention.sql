-- depends: 0003_missing_since

-- Retention (UTXO_RETENTION_MS): the maintenance pass deletes, in bounded batches, outpoints in a
-- terminal state (SPENT, INVALID) whose last change is older than the retention, their events, and
-- leases that expired before it and hold no outpoint. These indexes keep each batch an index range
-- scan on a pool of any size. The partial index holds only terminal rows: leasing, renewing and
-- releasing never touch it; a commit adds one entry per input (the row leaves the AVAILABLE/RESERVED
-- indexes in the same update). Events need no new index: the prune walks their primary key up to
-- the last event older than the retention (ids grow with time) and deletes those whose outpoint is
-- gone.
CREATE INDEX utxos_terminal_updated ON utxos (updated_at) WHERE status IN ('spent', 'invalid');
CREATE INDEX leases_expires_at ON leases (expires_at);
