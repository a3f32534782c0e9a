-- depends: 0001_signer

-- The database is the last line of defence (issue 12): whatever a bug above lets through, no row
-- may hold an impossible number. Every numeric column of the schema, and its rule:
--
--   key_spends.satoshis                          0 .. 2,100,000,000,000,000  key_spends_satoshis_range
--                                                (replaces key_spends_satoshis_check)
--   keys.master_key_version                      >= 1                        keys_master_key_version_range
--                                                (MasterKeyring refuses versions below 1)
--   keys.policy -> max_amount_per_tx_satoshis    keys_policy_max_amount_per_tx_range
--   keys.policy -> max_amount_per_day_satoshis   keys_policy_max_amount_per_day_range
--   keys.policy -> max_fee_satoshis              keys_policy_max_fee_range
--                                                each absent, or an integer 0 .. 2,100,000,000,000,000
--                                                (0 = no limit; the store writes all three)
--   (signing_audit.id is a serial)
--
-- Aggregates: the daily limit sums key_spends over 24 hours; that sum stays numeric (PostgreSQL's
-- sum(bigint)) and reaches Python exact instead of being cast back to bigint, which would overflow
-- past 2^63 - 1 (~4,400 spends at the per-row maximum).
ALTER TABLE key_spends
    DROP CONSTRAINT key_spends_satoshis_check,
    ADD CONSTRAINT key_spends_satoshis_range CHECK (satoshis BETWEEN 0 AND 2100000000000000);

ALTER TABLE keys
    ADD CONSTRAINT keys_master_key_version_range CHECK (master_key_version >= 1),
    ADD CONSTRAINT keys_policy_max_amount_per_tx_range CHECK (
        CASE jsonb_typeof(policy -> 'max_amount_per_tx_satoshis')
            WHEN 'number' THEN (policy ->> 'max_amount_per_tx_satoshis')::numeric BETWEEN 0 AND 2100000000000000
                               AND (policy ->> 'max_amount_per_tx_satoshis')::numeric % 1 = 0
            ELSE policy -> 'max_amount_per_tx_satoshis' IS NULL
        END),
    ADD CONSTRAINT keys_policy_max_amount_per_day_range CHECK (
        CASE jsonb_typeof(policy -> 'max_amount_per_day_satoshis')
            WHEN 'number' THEN (policy ->> 'max_amount_per_day_satoshis')::numeric BETWEEN 0 AND 2100000000000000
                               AND (policy ->> 'max_amount_per_day_satoshis')::numeric % 1 = 0
            ELSE policy -> 'max_amount_per_day_satoshis' IS NULL
        END),
    ADD CONSTRAINT keys_policy_max_fee_range CHECK (
        CASE jsonb_typeof(policy -> 'max_fee_satoshis')
            WHEN 'number' THEN (policy ->> 'max_fee_satoshis')::numeric BETWEEN 0 AND 2100000000000000
                               AND (policy ->> 'max_fee_satoshis')::numeric % 1 = 0
            ELSE policy -> 'max_fee_satoshis' IS NULL
        END);
