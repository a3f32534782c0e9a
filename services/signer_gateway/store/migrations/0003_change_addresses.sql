-- depends: 0002_value_ranges

-- KeyPolicy.change_addresses lives in keys.policy beside the limits it changes (what a key counts
-- as sent away), so the database refuses what the gateway would never write, as 0002 does for the
-- limits:
--
--   keys.policy -> change_addresses   keys_policy_change_addresses_shape
--                                     absent (policies stored before the field, read as none), or
--                                     an array of at most 1000 strings, each shaped like a
--                                     Base58Check P2PKH address ([1mn] then 24..33 base58
--                                     characters; the checksum is the gateway's to check)
ALTER TABLE keys
    ADD CONSTRAINT keys_policy_change_addresses_shape CHECK (
        CASE jsonb_typeof(policy -> 'change_addresses')
            WHEN 'array' THEN jsonb_array_length(policy -> 'change_addresses') <= 1000
                              AND NOT jsonb_path_exists(
                                  policy -> 'change_addresses',
                                  'strict $[*] ? (@.type() != "string"
                                                  || !(@ like_regex "^[1mn][1-9A-HJ-NP-Za-km-z]{24,33}$"))')
            ELSE policy -> 'change_addresses' IS NULL
        END);
