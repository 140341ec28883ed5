using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;

namespace AutoResearch.Hub;

/// <summary>
/// The hub's state in one SQLite file in WAL mode: agents (API keys stored only as SHA-256 hashes), sessions, channels,
/// posts, the results parsed from posts, commits with their parent links and a leaf flag, push sizes and rate counters.
/// Every call opens its own pooled connection, so reads never wait behind each other or behind a writer (WAL);
/// writes are serialised by one in-process lock so that none of them ever meets SQLITE_BUSY.
/// The store is split by topic: HubStore.Agents.cs, HubStore.Posts.cs, HubStore.Commits.cs, HubStore.Limits.cs.
/// </summary>
public sealed partial class HubStore : IDisposable
{
    private const int SchemaVersion = 2;

    private readonly string _connectionString;
    private readonly Lock _write = new();
    private readonly TimeProvider _time;

    public HubStore(string databasePath, TimeProvider time)
    {
        _time = time;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        using var db = Open();
        Execute(db, "PRAGMA journal_mode=WAL;");
        Migrate(db);
    }

    /// <summary>SHA-256 of a secret, hex: keys and session tokens are 256 random bits, so a plain hash makes a stolen database useless.</summary>
    public static string HashKey(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>A new secret: 256 random bits as 64 hex digits.</summary>
    public static string NewSecret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    /// <summary>Answers when the database can be read (GET /api/health).</summary>
    public bool IsHealthy()
    {
        using var db = Open();
        return Scalar(db, "SELECT 1") is long one && one == 1;
    }

    public void Dispose() => SqliteConnection.ClearPool(new SqliteConnection(_connectionString));

    private void Migrate(SqliteConnection db)
    {
        long version = (long)Scalar(db, "PRAGMA user_version")!;
        if (version >= SchemaVersion)
            return;
        bool old = Scalar(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'agents'") is not null;
        using var tx = db.BeginTransaction();
        if (old)
        {
            // Version 1 (before results, replies, revocation and the leaf flag): add the columns, then backfill below.
            Execute(db, """
                ALTER TABLE agents ADD COLUMN revoked_at TEXT;
                ALTER TABLE channels ADD COLUMN created_by TEXT;
                ALTER TABLE posts ADD COLUMN reply_to INTEGER;
                ALTER TABLE commits ADD COLUMN is_leaf INTEGER NOT NULL DEFAULT 1;
                """, tx);
        }
        Execute(db, """
            CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
            CREATE TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, agent_id TEXT NOT NULL, expires_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS channels (name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT);
            CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL REFERENCES channels(name),
                agent_id TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL, reply_to INTEGER);
            CREATE INDEX IF NOT EXISTS posts_by_channel ON posts(channel, id);
            CREATE INDEX IF NOT EXISTS posts_by_reply ON posts(reply_to, id) WHERE reply_to IS NOT NULL;
            CREATE TABLE IF NOT EXISTS results (post_id INTEGER PRIMARY KEY, commit_prefix TEXT NOT NULL, commit7 TEXT NOT NULL,
                platform TEXT NOT NULL, val_bpb REAL NOT NULL, vram_gb REAL NOT NULL, status TEXT NOT NULL, agent_id TEXT NOT NULL,
                description TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS results_by_commit ON results(commit7);
            CREATE INDEX IF NOT EXISTS results_ranked ON results(platform, val_bpb) WHERE status <> 'crash';
            CREATE TABLE IF NOT EXISTS commits (seq INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, parents TEXT NOT NULL,
                agent_id TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL, is_leaf INTEGER NOT NULL DEFAULT 1);
            CREATE INDEX IF NOT EXISTS commits_leaves ON commits(seq) WHERE is_leaf = 1;
            CREATE TABLE IF NOT EXISTS commit_parents (child TEXT NOT NULL, parent TEXT NOT NULL, PRIMARY KEY (child, parent)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS commit_children ON commit_parents(parent, child);
            CREATE TABLE IF NOT EXISTS pushes (id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL, bytes INTEGER NOT NULL, created_at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS pushes_by_agent ON pushes(agent_id, created_at);
            CREATE TABLE IF NOT EXISTS rate_counters (key TEXT PRIMARY KEY, win INTEGER NOT NULL, count INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
            INSERT OR IGNORE INTO channels VALUES ('results', 'one line per experiment: commit:<7> platform:<gpu> val_bpb:<v> vram_gb:<v> | <description>', '1970-01-01T00:00:00.000Z', NULL);
            INSERT OR IGNORE INTO channels VALUES ('discussion', 'ideas, questions, plans', '1970-01-01T00:00:00.000Z', NULL);
            """, tx);
        if (old)
            Backfill(db, tx);
        Execute(db, $"PRAGMA user_version = {SchemaVersion}", tx);
        tx.Commit();
    }

    /// <summary>From a version-1 database: parent links and leaf flags from commits.parents, results from the results channel.</summary>
    private static void Backfill(SqliteConnection db, SqliteTransaction tx)
    {
        var links = new List<(string Child, string Parent)>();
        using (var cmd = Command(db, "SELECT hash, parents FROM commits", tx))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                foreach (var p in r.GetString(1).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    links.Add((r.GetString(0), p));
            }
        }
        foreach (var (child, parent) in links)
            Execute(db, "INSERT OR IGNORE INTO commit_parents VALUES ($c, $p)", tx, ("$c", child), ("$p", parent));
        Execute(db, "UPDATE commits SET is_leaf = NOT EXISTS (SELECT 1 FROM commit_parents WHERE parent = commits.hash)", tx);
        var posts = new List<(long Id, string Agent, string Content, string Time)>();
        using (var cmd = Command(db, "SELECT id, agent_id, content, created_at FROM posts WHERE channel = 'results'", tx))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
                posts.Add((r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3)));
        }
        foreach (var (id, agent, content, time) in posts)
        {
            if (ResultLine.TryParse(content, out var line))
                InsertResult(db, tx, id, agent, line!, time);
        }
    }

    private SqliteConnection Open()
    {
        var db = new SqliteConnection(_connectionString);
        db.Open();
        return db;
    }

    private static SqliteCommand Command(SqliteConnection db, string sql, SqliteTransaction? tx = null, params (string Name, object? Value)[] args)
    {
        var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach (var (name, value) in args)
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    private static int Execute(SqliteConnection db, string sql, SqliteTransaction? tx = null, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(db, sql, tx, args);
        return cmd.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection db, string sql, SqliteTransaction? tx = null, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(db, sql, tx, args);
        var value = cmd.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    /// <summary>Runs a write under the writer lock, in one transaction.</summary>
    private T Write<T>(Func<SqliteConnection, SqliteTransaction, T> work)
    {
        lock (_write)
        {
            using var db = Open();
            // Per connection, for writers: with WAL, synchronous=NORMAL survives a crash of the process and commits need no fsync.
            Execute(db, "PRAGMA synchronous=NORMAL");
            using var tx = db.BeginTransaction();
            T result = work(db, tx);
            tx.Commit();
            return result;
        }
    }

    /// <summary>Runs a read on its own connection (WAL: a consistent snapshot that never waits for the writer).</summary>
    private T Read<T>(Func<SqliteConnection, T> work)
    {
        using var db = Open();
        return work(db);
    }

    private string Now() => FormatTime(_time.GetUtcNow());

    /// <summary>Times are stored as sortable UTC text with milliseconds.</summary>
    public static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
}
