-- depends: 0004_identities

-- Backup shares of identity keys (issue 14): at most 2 per key, ever (slot 1 or 2, the primary
-- key), below the SLIP-0039 threshold of 3, so the suite alone can never rebuild a key. Each share
-- is sealed with AES-256-GCM under the wallet's backup KEK (`kek_version`); the associated data
-- binds the account, the key, the slot and the member index, so a row moved elsewhere fails to
-- open. `split` is what every share of one split has in common (identifier, parameters), kept to
-- refuse shares of another split without opening anything; it says nothing of the key.
CREATE TABLE backup_shares (
    pubkey       bytea       NOT NULL REFERENCES identities (pubkey),
    slot         smallint    NOT NULL CHECK (slot IN (1, 2)),
    account_id   text        NOT NULL REFERENCES accounts (account_id),
    member_index smallint    NOT NULL CHECK (member_index BETWEEN 0 AND 15),
    split        text        NOT NULL CHECK (char_length(split) <= 64),
    kek_version  smallint    NOT NULL CHECK (kek_version >= 1),
    nonce        bytea       NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext   bytea       NOT NULL CHECK (octet_length(ciphertext) BETWEEN 17 AND 1024),
    stored_by    text        NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pubkey, slot),
    UNIQUE (pubkey, member_index)
);

-- Every release of a key's shares after a verified recovery code: who, for which account and key,
-- when. Append-only.
CREATE TABLE backup_releases (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  text        NOT NULL REFERENCES accounts (account_id),
    pubkey      bytea       NOT NULL CHECK (octet_length(pubkey) = 33),
    caller_id   text        NOT NULL,
    recovery_id text        NOT NULL UNIQUE,
    shares      smallint    NOT NULL CHECK (shares BETWEEN 1 AND 2),
    released_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX backup_releases_by_key ON backup_releases (pubkey, seq);
