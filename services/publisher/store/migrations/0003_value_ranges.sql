-- depends: 0002_pipeline

-- The database is the last line of defence (issue 12): whatever a bug above lets through, no row
-- may hold an impossible number. Every numeric column of the schema, and its rule:
--
--   jobs.fee_satoshis            0 .. 2,100,000,000,000,000  jobs_fee_satoshis_range (replaces jobs_fee_satoshis_check)
--   jobs.funding_satoshis        1 .. 2,100,000,000,000,000  jobs_funding_satoshis_range
--                                (replaces jobs_funding_satoshis_check; a pool output is never 0 sat)
--   jobs.funding_vout            0 .. 4,294,967,295          jobs_funding_vout_range (replaces jobs_funding_vout_check)
--                                (widened to bigint: the pool outpoint's vout is a uint32)
--   jobs.attempts                >= 0                        jobs_attempts_check (0001, unchanged)
--   jobs.builds                  >= 0                        jobs_builds_check (0001, unchanged)
--   jobs.block_height            >= 0                        jobs_block_height_check (0001, unchanged)
--   jobs.lease_token             > 0                         jobs_lease_token_range (from job_lease_tokens)
--   jobs.utxo_fencing_token      >= 0                        jobs_utxo_fencing_token_range
--   identity_events.cancelled_jobs >= 0                      identity_events_cancelled_jobs_range
--   (ids and identities.seq are identities; the publisher keeps no sums)
--
-- Parameters: apply_moves passes funding vouts as bigint[] (they were int[], "out of int32 range"
-- for a vout >= 2^31).
ALTER TABLE jobs
    ALTER COLUMN funding_vout TYPE bigint,
    DROP CONSTRAINT jobs_fee_satoshis_check,
    DROP CONSTRAINT jobs_funding_satoshis_check,
    DROP CONSTRAINT jobs_funding_vout_check,
    ADD CONSTRAINT jobs_fee_satoshis_range CHECK (fee_satoshis BETWEEN 0 AND 2100000000000000),
    ADD CONSTRAINT jobs_funding_satoshis_range CHECK (funding_satoshis BETWEEN 1 AND 2100000000000000),
    ADD CONSTRAINT jobs_funding_vout_range CHECK (funding_vout BETWEEN 0 AND 4294967295),
    ADD CONSTRAINT jobs_lease_token_range CHECK (lease_token > 0),
    ADD CONSTRAINT jobs_utxo_fencing_token_range CHECK (utxo_fencing_token >= 0);

ALTER TABLE identity_events
    ADD CONSTRAINT identity_events_cancelled_jobs_range CHECK (cancelled_jobs >= 0);
