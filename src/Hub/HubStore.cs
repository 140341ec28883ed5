using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;

namespace AutoResearch.Hub;

/// <summary>
/// The hub's state in one SQLite file: agents (API keys stored only as SHA-256 hashes), channels, posts, commits.
/// One connection behind a lock: every call is a short statement, and serialising them makes concurrent writers lose nothing.
/// </summary>
public sealed class HubStore : IDisposable
{
    private readonly SqliteConnection _db;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;

    public HubStore(string databasePath, TimeProvider time)
    {
        _time = time;
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        _db.Open();
        Execute("""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=NORMAL;
            CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS channels (name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL REFERENCES channels(name),
                agent_id TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS commits (seq INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, parents TEXT NOT NULL,
                agent_id TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS posts_by_channel ON posts(channel, id);
            INSERT OR IGNORE INTO channels VALUES ('results', 'one line per experiment: commit:<7> platform:<gpu> val_bpb:<v> vram_gb:<v> | <description>', '1970-01-01T00:00:00Z');
            INSERT OR IGNORE INTO channels VALUES ('discussion', 'ideas, questions, plans', '1970-01-01T00:00:00Z');
            """);
    }

    /// <summary>SHA-256 of the key, hex: keys are 256 random bits, so a plain hash is enough to make a stolen database useless.</summary>
    public static string HashKey(string apiKey) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(apiKey)));

    /// <summary>Creates an agent with a fresh key; returns the key, or null when the id is taken.</summary>
    public string? Register(string id)
    {
        string key = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        lock (_lock)
        {
            using var cmd = Command("INSERT OR IGNORE INTO agents VALUES ($id, $h, $t)", ("$id", id), ("$h", HashKey(key)), ("$t", Now()));
            return cmd.ExecuteNonQuery() == 1 ? key : null;
        }
    }

    /// <summary>The agent owning a key, or null.</summary>
    public string? Authenticate(string apiKey)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT id FROM agents WHERE key_hash = $h", ("$h", HashKey(apiKey)));
            return cmd.ExecuteScalar() as string;
        }
    }

    public bool CreateChannel(string name, string description)
    {
        lock (_lock)
        {
            using var cmd = Command("INSERT OR IGNORE INTO channels VALUES ($n, $d, $t)", ("$n", name), ("$d", description), ("$t", Now()));
            return cmd.ExecuteNonQuery() == 1;
        }
    }

    public bool ChannelExists(string name)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT 1 FROM channels WHERE name = $n", ("$n", name));
            return cmd.ExecuteScalar() is not null;
        }
    }

    public List<(string Name, string Description)> Channels()
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT name, description FROM channels ORDER BY name");
            using var r = cmd.ExecuteReader();
            var list = new List<(string, string)>();
            while (r.Read())
                list.Add((r.GetString(0), r.GetString(1)));
            return list;
        }
    }

    public PostRecord AddPost(string channel, string agentId, string content)
    {
        string now = Now();
        lock (_lock)
        {
            using var cmd = Command("INSERT INTO posts (channel, agent_id, content, created_at) VALUES ($c, $a, $x, $t) RETURNING id",
                ("$c", channel), ("$a", agentId), ("$x", content), ("$t", now));
            long id = (long)cmd.ExecuteScalar()!;
            return new PostRecord(id, channel, agentId, content, now);
        }
    }

    /// <summary>The newest posts of a channel, newest first.</summary>
    public List<PostRecord> Posts(string channel, int limit)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT id, channel, agent_id, content, created_at FROM posts WHERE channel = $c ORDER BY id DESC LIMIT $l",
                ("$c", channel), ("$l", limit));
            return ReadPosts(cmd);
        }
    }

    /// <summary>The newest posts of every channel, newest first (the dashboard).</summary>
    public List<PostRecord> LatestPosts(int limit)
    {
        lock (_lock)
        {
            using var cmd = Command("SELECT id, channel, agent_id, content, created_at FROM posts ORDER BY id DESC LIMIT $l", ("$l", limit));
            return ReadPosts(cmd);
        }
    }

    /// <summary>Records commits (oldest first); a hash already known is kept as it was.</summary>
    public void AddCommits(IEnumerable<GitRepository.CommitInfo> commits, string agentId)
    {
        string now = Now();
        lock (_lock)
        {
            using var tx = _db.BeginTransaction();
            foreach (var c in commits)
            {
                using var cmd = Command("INSERT OR IGNORE INTO commits (hash, parents, agent_id, message, created_at) VALUES ($h, $p, $a, $m, $t)",
                    ("$h", c.Hash), ("$p", string.Join(' ', c.Parents)), ("$a", agentId), ("$m", c.Message), ("$t", now));
                cmd.Transaction = tx;
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
    }

    /// <summary>The full hash of a known commit from a 7–40 digit prefix; null when unknown or ambiguous.</summary>
    public string? ResolveCommit(string prefix)
    {
        lock (_lock)
        {
            // prefix is validated hex, so it carries no LIKE wildcards.
            using var cmd = Command("SELECT hash FROM commits WHERE hash LIKE $p || '%' LIMIT 2", ("$p", prefix));
            using var r = cmd.ExecuteReader();
            string? found = null;
            int n = 0;
            while (r.Read())
            {
                found = r.GetString(0);
                n++;
            }
            return n == 1 ? found : null;
        }
    }

    public List<CommitRecord> Commits(int limit) =>
        QueryCommits("SELECT hash, parents, agent_id, message, created_at FROM commits ORDER BY seq DESC LIMIT $l", ("$l", limit));

    /// <summary>Commits no other commit names as a parent, newest first.</summary>
    public List<CommitRecord> Leaves() => QueryCommits("""
        SELECT hash, parents, agent_id, message, created_at FROM commits c
        WHERE NOT EXISTS (SELECT 1 FROM commits k WHERE ' ' || k.parents || ' ' LIKE '% ' || c.hash || ' %')
        ORDER BY seq DESC
        """);

    public List<CommitRecord> Children(string fullHash) => QueryCommits("""
        SELECT hash, parents, agent_id, message, created_at FROM commits
        WHERE ' ' || parents || ' ' LIKE '% ' || $h || ' %' ORDER BY seq
        """, ("$h", fullHash));

    public void Dispose() => _db.Dispose();

    private List<CommitRecord> QueryCommits(string sql, params (string, object)[] args)
    {
        lock (_lock)
        {
            using var cmd = Command(sql, args);
            using var r = cmd.ExecuteReader();
            var list = new List<CommitRecord>();
            while (r.Read())
                list.Add(new CommitRecord(r.GetString(0), r.GetString(1).Split(' ', StringSplitOptions.RemoveEmptyEntries),
                    r.GetString(2), r.GetString(3), r.GetString(4)));
            return list;
        }
    }

    private static List<PostRecord> ReadPosts(SqliteCommand cmd)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<PostRecord>();
        while (r.Read())
            list.Add(new PostRecord(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4)));
        return list;
    }

    private SqliteCommand Command(string sql, params (string Name, object Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
            cmd.Parameters.AddWithValue(name, value);
        return cmd;
    }

    private void Execute(string sql)
    {
        using var cmd = Command(sql);
        cmd.ExecuteNonQuery();
    }

    private string Now() => _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
}
