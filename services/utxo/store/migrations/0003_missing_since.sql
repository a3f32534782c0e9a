-- depends: 0002_cheap_checks

-- When a sync first found an unspent outpoint (AVAILABLE, RESERVED or DIRTY) absent from the
-- chain's lists with a transaction the chain does not know. It becomes INVALID only when it is
-- still missing at a sync UTXO_INVALID_AFTER_MS or more later (one answer from an indexer that is
-- behind, or a node that lost its mempool, must not write coins off); any sync that sees it again
-- clears the mark.
ALTER TABLE utxos ADD COLUMN missing_since timestamptz;
