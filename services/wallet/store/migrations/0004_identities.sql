-- depends: 0003_reopened_sends

-- The identity keys linked to accounts (issue 14, forwarding). A key belongs to at most one account
-- (the primary key): SubmitIntent checks IDENTITY_NOT_IN_ACCOUNT, and GetIntentJob / WatchIntentJob
-- that a job's key is the account's, against this table without asking the publisher.
--
-- A row is written 'pending' before the publisher is asked to register the key (so two accounts
-- racing for one key meet here, and the loser is refused before the publisher hears of it), and
-- becomes 'active' with the publisher's answer; a refused registration deletes it. 'revoked' follows
-- the publisher's RevokeIdentity (final, as there). The publisher's own fields are kept as it
-- answered them, so a repeated registration returns the identity unchanged without a round trip.
CREATE TABLE identities (
    seq           bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    pubkey        bytea       PRIMARY KEY CHECK (octet_length(pubkey) = 33),
    account_id    text        NOT NULL REFERENCES accounts (account_id),
    label         text        NOT NULL CHECK (char_length(label) BETWEEN 1 AND 128),
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'revoked')),
    owner_ref     text        NOT NULL DEFAULT '' CHECK (char_length(owner_ref) <= 128),
    registered_by text        NOT NULL DEFAULT '',
    registered_at timestamptz,
    revoked_at    timestamptz,
    revoke_reason text        NOT NULL DEFAULT '' CHECK (char_length(revoke_reason) <= 512),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'pending') = (registered_at IS NULL)),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);

CREATE INDEX identities_by_account ON identities (account_id, seq);
