using Microsoft.Data.Sqlite;

namespace AutoResearch.Hub;

/// <summary>Agents, their keys (hashes only) and browser sessions.</summary>
public sealed partial class HubStore
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string Agent, long At)> _keys = new(StringComparer.Ordinal);

    // Counts the times keys were forgotten (a rotation or revocation): a lookup that began before one does not remember its result.
    private long _keyGeneration;

    /// <summary>Creates an agent with a fresh key; returns the key, or null when the id is taken (revoked ids stay taken).</summary>
    public string? Register(string id)
    {
        string key = NewSecret();
        return Write((db, tx) => Execute(db, "INSERT OR IGNORE INTO agents (id, key_hash, created_at) VALUES ($id, $h, $t)", tx,
            ("$id", id), ("$h", HashKey(key)), ("$t", Now())) == 1 ? key : null);
    }

    /// <summary>How long a key's owner is remembered; a key revoked by another process (autoresearch-hub revoke) stops working within it.</summary>
    public static readonly TimeSpan KeyCacheTime = TimeSpan.FromSeconds(10);

    /// <summary>The agent owning a key, or null (unknown or revoked). Every request asks, so known keys are remembered briefly.</summary>
    public string? Authenticate(string apiKey)
    {
        string hash = HashKey(apiKey);
        long now = _time.GetTimestamp();
        if (_keys.TryGetValue(hash, out var known) && _time.GetElapsedTime(known.At, now) < KeyCacheTime)
            return known.Agent;
        long generation = Interlocked.Read(ref _keyGeneration);
        string? agent = Read(db => Scalar(db, "SELECT id FROM agents WHERE key_hash = $h AND revoked_at IS NULL", null, ("$h", hash)) as string);
        // A key rotated or revoked while this read ran may have been read as valid: answer, but do not remember it.
        if (agent is not null && Interlocked.Read(ref _keyGeneration) == generation)
        {
            if (_keys.Count > 100_000)
                _keys.Clear();
            _keys[hash] = (agent, now);
            // Forgotten meanwhile: ForgetKeys counts before it removes, so either it removes this entry or this check sees it.
            if (Interlocked.Read(ref _keyGeneration) != generation)
                _keys.TryRemove(hash, out _);
        }
        return agent;
    }

    /// <summary>Replaces the agent's key with a fresh one (the old key stops working at once) and ends its browser sessions.</summary>
    public string RotateKey(string agentId)
    {
        string key = NewSecret();
        Write((db, tx) =>
        {
            Execute(db, "UPDATE agents SET key_hash = $h WHERE id = $id AND revoked_at IS NULL", tx, ("$h", HashKey(key)), ("$id", agentId));
            return Execute(db, "DELETE FROM sessions WHERE agent_id = $id", tx, ("$id", agentId));
        });
        // After the commit: a request that read the old key just before it cannot leave it remembered.
        ForgetKeys(agentId);
        return key;
    }

    /// <summary>Revokes the agent's key for good (its id stays taken, its commits and posts stay); false when already revoked or unknown.</summary>
    public bool Revoke(string agentId)
    {
        bool revoked = Write((db, tx) =>
        {
            // key_hash is unique and non-null: an unguessable placeholder that no key hashes to.
            int n = Execute(db, "UPDATE agents SET revoked_at = $t, key_hash = 'revoked:' || id WHERE id = $id AND revoked_at IS NULL", tx,
                ("$t", Now()), ("$id", agentId));
            Execute(db, "DELETE FROM sessions WHERE agent_id = $id", tx, ("$id", agentId));
            return n == 1;
        });
        ForgetKeys(agentId);
        return revoked;
    }

    /// <summary>Agents in id order after the given id (a cursor), with how many commits and posts each has.</summary>
    public List<AgentRecord> Agents(int limit, string? after) => Read(db =>
    {
        using var cmd = Command(db, """
            SELECT a.id, a.created_at, a.revoked_at,
                (SELECT COUNT(*) FROM commits c WHERE c.agent_id = a.id), (SELECT COUNT(*) FROM posts p WHERE p.agent_id = a.id)
            FROM agents a WHERE a.id > $after ORDER BY a.id LIMIT $l
            """, null, ("$after", after ?? ""), ("$l", limit));
        using var r = cmd.ExecuteReader();
        var list = new List<AgentRecord>();
        while (r.Read())
            list.Add(new AgentRecord(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetInt64(3), r.GetInt64(4)));
        return list;
    });

    /// <summary>Starts a browser session for an agent; returns the token for the cookie (only its hash is stored).</summary>
    public string CreateSession(string agentId, TimeSpan lifetime)
    {
        string token = NewSecret();
        Write((db, tx) =>
        {
            Execute(db, "DELETE FROM sessions WHERE expires_at < $now", tx, ("$now", Now()));
            return Execute(db, "INSERT INTO sessions VALUES ($h, $a, $e)", tx,
                ("$h", HashKey(token)), ("$a", agentId), ("$e", FormatTime(_time.GetUtcNow() + lifetime)));
        });
        return token;
    }

    /// <summary>The agent of a live session token, or null.</summary>
    public string? AuthenticateSession(string token) => Read(db => Scalar(db, """
        SELECT s.agent_id FROM sessions s JOIN agents a ON a.id = s.agent_id
        WHERE s.token_hash = $h AND s.expires_at > $now AND a.revoked_at IS NULL
        """, null, ("$h", HashKey(token)), ("$now", Now())) as string);

    public void EndSession(string token) => Write((db, tx) => Execute(db, "DELETE FROM sessions WHERE token_hash = $h", tx, ("$h", HashKey(token))));

    private void ForgetKeys(string agentId)
    {
        Interlocked.Increment(ref _keyGeneration);
        foreach (var (hash, known) in _keys)
        {
            if (known.Agent == agentId)
                _keys.TryRemove(hash, out _);
        }
    }

    private static long Count(SqliteConnection db, string table) => (long)Scalar(db, $"SELECT COUNT(*) FROM {table}")!;
}
