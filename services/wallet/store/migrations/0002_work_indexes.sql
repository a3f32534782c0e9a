-- depends: 0001_wallet

-- Each worker's claim reads its own index, so no claim walks past rows another stage is due for:
-- the send pipeline by status (PENDING, SENDING) and due time; the rechecks of accepted sends and
-- deposits not mined yet by due time; the confirmation round by height.
CREATE INDEX wallet_txs_pipeline ON wallet_txs (status, next_attempt_at, seq) WHERE direction = 'outgoing';
CREATE INDEX wallet_txs_unmined ON wallet_txs (next_attempt_at)
    WHERE status = 'unconfirmed' AND block_height IS NULL;
CREATE INDEX wallet_txs_settling ON wallet_txs (block_height)
    WHERE status = 'reorging' OR (status = 'unconfirmed' AND block_height IS NOT NULL);
DROP INDEX wallet_txs_work;

-- Room on every page for the claims' updates (lease owner, fence, lease end: columns no index
-- holds) to stay on the page (HOT), so a claim writes no index entries.
ALTER TABLE wallet_txs SET (fillfactor = 70);
