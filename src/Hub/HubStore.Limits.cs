namespace AutoResearch.Hub;

/// <summary>Rate-limit counters and push sizes, kept in the database so that a restart resets neither.</summary>
public sealed partial class HubStore
{
    private int _acquisitions;

    /// <summary>
    /// Counts one event for key in the current fixed window of windowSeconds; false when the key already had `limit` events in it
    /// (the refused attempt is not counted).
    /// </summary>
    public bool TryAcquire(string key, int limit, int windowSeconds)
    {
        long now = _time.GetUtcNow().ToUnixTimeSeconds();
        long window = now / windowSeconds;
        bool prune = Interlocked.Increment(ref _acquisitions) % 256 == 0;
        return Write((db, tx) =>
        {
            if (prune)
                Execute(db, "DELETE FROM rate_counters WHERE expires <= $now", tx, ("$now", now));
            long count = (long)Scalar(db, """
                INSERT INTO rate_counters VALUES ($k, $w, 1, $e)
                ON CONFLICT(key) DO UPDATE SET count = CASE WHEN win = $w THEN MIN(count + 1, $max) ELSE 1 END, win = $w, expires = $e
                RETURNING count
                """, tx, ("$k", key), ("$w", window), ("$e", (window + 1) * windowSeconds), ("$max", (long)limit + 1))!;
            return count <= limit;
        });
    }

    /// <summary>Bytes of accepted bundles the agent pushed since the given time.</summary>
    public long PushedBytesSince(string agentId, DateTimeOffset since) => Read(db => (long)Scalar(db,
        "SELECT COALESCE(SUM(bytes), 0) FROM pushes WHERE agent_id = $a AND created_at >= $t", null, ("$a", agentId), ("$t", FormatTime(since)))!);

    public void RecordPush(string agentId, long bytes) =>
        Write((db, tx) => Execute(db, "INSERT INTO pushes (agent_id, bytes, created_at) VALUES ($a, $b, $t)", tx, ("$a", agentId), ("$b", bytes), ("$t", Now())));
}
