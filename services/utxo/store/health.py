"""Health: the aggregates of the health snapshot. Sums of satoshis stay numeric (never cast back to
bigint): exact past 2^63 - 1, which ~4,400 outputs at the per-row maximum reach (migration 0005)."""

from __future__ import annotations

from proofline_kit.database import Queries
from services.utxo.domain.models import Bucket, LeaseCounts, PublishFigures, Purpose, UtxoStatus


class HealthQueries(Queries):
    async def buckets(self, owner_key_id: str, purpose: Purpose | None) -> list[Bucket]:
        rows = await self._conn.fetch(
            """SELECT purpose, status, count(*) AS n, COALESCE(sum(satoshis), 0) AS sats FROM utxos
               WHERE ($1 = '' OR owner_key_id = $1) AND ($2::text IS NULL OR purpose = $2)
               GROUP BY purpose, status ORDER BY purpose, status""",
            owner_key_id,
            purpose.value if purpose else None,
        )
        return [Bucket(Purpose(r["purpose"]), UtxoStatus(r["status"]), int(r["n"]), int(r["sats"])) for r in rows]

    async def lease_counts(self, owner_key_id: str, purpose: Purpose | None) -> LeaseCounts:
        row = await self._conn.fetchrow(
            """WITH held AS (
                   SELECT u.fencing_token, count(*) AS n, bool_or(u.lease_expires_at > now()) AS live
                   FROM utxos u
                   WHERE u.status = 'reserved' AND ($1 = '' OR u.owner_key_id = $1)
                     AND ($2::text IS NULL OR u.purpose = $2)
                   GROUP BY u.fencing_token
               )
               SELECT count(*) FILTER (WHERE live) AS live_leases,
                      COALESCE(sum(n) FILTER (WHERE live), 0)::bigint AS live_utxos,
                      count(*) FILTER (WHERE NOT live) AS expired_leases,
                      COALESCE(sum(n) FILTER (WHERE NOT live), 0)::bigint AS expired_utxos,
                      (SELECT min(l.created_at) FROM leases l JOIN held h USING (fencing_token) WHERE h.live)
                          AS oldest
               FROM held""",
            owner_key_id,
            purpose.value if purpose else None,
        )
        assert row is not None
        return LeaseCounts(
            int(row["live_leases"]),
            int(row["live_utxos"]),
            int(row["expired_leases"]),
            int(row["expired_utxos"]),
            row["oldest"],
        )

    async def publish_figures(self, owner_key_id: str, min_satoshis: int) -> PublishFigures:
        row = await self._conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM utxos
                  WHERE purpose = 'publish' AND status = 'available' AND satoshis >= $2
                    AND ($1 = '' OR owner_key_id = $1)) AS ready,
                 (SELECT COALESCE(sum(satoshis), 0) FROM utxos
                  WHERE purpose = 'publish' AND status IN ('available', 'reserved', 'unconfirmed')
                    AND ($1 = '' OR owner_key_id = $1)) AS publish_sats,
                 (SELECT COALESCE(sum(satoshis), 0) FROM utxos
                  WHERE purpose = 'funding' AND status IN ('available', 'reserved', 'unconfirmed')
                    AND ($1 = '' OR owner_key_id = $1)) AS funding_sats,
                 (SELECT count(*) FROM utxo_events e JOIN utxos u ON u.id = e.utxo_id
                  WHERE e.kind = 'commit' AND e.at > now() - interval '1 hour' AND u.purpose = 'publish'
                    AND ($1 = '' OR u.owner_key_id = $1)) AS spends""",
            owner_key_id,
            min_satoshis,
        )
        assert row is not None
        return PublishFigures(int(row["ready"]), int(row["publish_sats"]), int(row["funding_sats"]), int(row["spends"]))

    async def count_available(self, purpose: Purpose, owner_key_id: str) -> int:
        """AVAILABLE coins a default lease could take (on chain evidence: unconfirmed_depth 0); the
        split's low-water mark counts these."""
        value = await self._conn.fetchval(
            """SELECT count(*) FROM utxos u
               WHERE u.status = 'available' AND u.purpose = $1 AND ($2 = '' OR u.owner_key_id = $2)
                 AND u.unconfirmed_depth = 0""",
            purpose.value,
            owner_key_id,
        )
        return int(value)
