-- depends: 0004_retention

-- The database is the last line of defence (issue 12): whatever a bug above lets through, no row
-- may hold an impossible number. Every numeric column of the schema, and its rule:
--
--   utxos.satoshis              1 .. 2,100,000,000,000,000   utxos_satoshis_range (replaces utxos_satoshis_check)
--                               (at most the 21,000,000 BTC supply; a 0-sat output is never pooled)
--   utxos.vout                  0 .. 4,294,967,295           utxos_vout_range (replaces utxos_vout_check)
--                               (widened to bigint: an output index is a uint32, so every vout a
--                               client can name is storable, and an unknown one is simply not found)
--   utxos.block_height          > 0                          utxos_block_height_check (0001, unchanged)
--   utxos.fencing_token         > 0                          utxos_fencing_token_range (tokens come from a sequence)
--   leases.fencing_token        > 0                          leases_fencing_token_range
--   utxo_events.fencing_token   > 0                          utxo_events_fencing_token_range
--   chain_tip.height            >= 0                         chain_tip_height_check (0001, unchanged)
--   maintenance_state.fence     >= 0                         maintenance_state_fence_range (0 = never claimed)
--   maintenance_txs.attempts    >= 0                         maintenance_txs_attempts_range
--   (ids are identities; confirmations are computed, never stored)
--
-- Aggregates: a per-row bound cannot bound a sum (the database cannot know that rows are real
-- coins), so ~4,400 outputs at the per-row maximum already sum past 2^63 - 1. The store's sums stay
-- numeric (PostgreSQL's sum(bigint)) and reach Python exact; they are never cast back to bigint
-- (that cast was the "bigint out of range" that broke GetPoolHealth for good). The health snapshot
-- (domain/pool.py) computes the runway from the exact figures and then saturates each figure at
-- what its proto field carries (2^63 - 1 for int64 satoshis, the Duration range for the runway's
-- time): a pool that large is already impossible, so "at least this much" is the honest answer,
-- where an error would hide every other figure. The metrics gauges get the same snapshot; the
-- chain comparison's per-address sums (domain/maintenance.py) saturate the same way.
--
-- Parameters: the queries pass vouts as bigint[] (they were int[], "out of int32 range" for a vout
-- >= 2^31) and cast the ListUtxos satoshi bounds to bigint (`$7 = 0` had typed them int4).
--
-- The type change rewrites utxos and its indexes under an exclusive lock: quick at the pool's size.
ALTER TABLE utxos
    ALTER COLUMN vout TYPE bigint,
    DROP CONSTRAINT utxos_vout_check,
    DROP CONSTRAINT utxos_satoshis_check,
    ADD CONSTRAINT utxos_vout_range CHECK (vout BETWEEN 0 AND 4294967295),
    ADD CONSTRAINT utxos_satoshis_range CHECK (satoshis BETWEEN 1 AND 2100000000000000),
    ADD CONSTRAINT utxos_fencing_token_range CHECK (fencing_token > 0);

ALTER TABLE leases ADD CONSTRAINT leases_fencing_token_range CHECK (fencing_token > 0);

ALTER TABLE utxo_events ADD CONSTRAINT utxo_events_fencing_token_range CHECK (fencing_token > 0);

ALTER TABLE maintenance_state ADD CONSTRAINT maintenance_state_fence_range CHECK (fence >= 0);

ALTER TABLE maintenance_txs ADD CONSTRAINT maintenance_txs_attempts_range CHECK (attempts >= 0);
