-- depends: 0002_work_indexes

-- UNCONFIRMED -> PENDING: an accepted send built on our own unconfirmed change whose ancestor proved
-- dead can never be mined; it is built again from other coins, with the amount it took reserved
-- again (ledger entry 'reopened').
INSERT INTO tx_transitions (from_status, to_status) VALUES ('unconfirmed', 'pending');

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('deposit_seen', 'deposit_credited', 'deposit_dropped', 'reserve', 'signed', 'finalize',
                    'release', 'unsigned', 'reversal', 'written_off', 'reopened'));
