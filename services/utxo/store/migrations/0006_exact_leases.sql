-- depends: 0005_value_ranges

-- LeaseUtxos of exact outpoints (the caller ran its own coin selection) must lease all of them or
-- none, never wait for a row another transaction holds, and let exactly one of two concurrent
-- requests naming a common outpoint win. SKIP LOCKED cannot give the last: each request could
-- take one of two common rows and skip the other, and both would be refused. So a claim locks its
-- rows in ascending id order and stops at the first one it cannot lock at once (NOWAIT): the
-- rows a claim holds are then always below the row it is at, and two claims cannot each hold a
-- row the other one stops at. This function does that and names the row it stopped at (NULL when
-- it locked them all), so the refusal can say which outpoint is taken; a plain
-- `SELECT ... ORDER BY id FOR UPDATE NOWAIT` would only raise, without saying which row.
--
-- The EXCEPTION block is one subtransaction per call (not per row): on a conflict it rolls back,
-- releasing the locks the call took; otherwise they are the caller's until its transaction ends.
-- `ids` must be in ascending order (store/leases.py sorts them); unknown ids lock nothing.
CREATE FUNCTION utxos_lock_nowait(ids bigint[]) RETURNS bigint AS $$
DECLARE
    row_id bigint;
BEGIN
    BEGIN
        FOREACH row_id IN ARRAY ids LOOP
            PERFORM 1 FROM utxos WHERE id = row_id FOR UPDATE NOWAIT;
        END LOOP;
    EXCEPTION WHEN lock_not_available THEN
        RETURN row_id;
    END;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT;
