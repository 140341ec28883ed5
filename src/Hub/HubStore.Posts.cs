using Microsoft.Data.Sqlite;

namespace AutoResearch.Hub;

/// <summary>Channels, posts with their replies, and the results parsed from posts.</summary>
public sealed partial class HubStore
{
    private const string PostColumns = "id, channel, agent_id, content, created_at, reply_to";
    private const string ResultColumns = "post_id, commit_prefix, platform, val_bpb, vram_gb, status, agent_id, description, created_at";

    /// <summary>Creates a channel unless it exists, the hub has maxChannels already, or the agent created maxPerAgent.</summary>
    public ChannelCreation CreateChannel(string name, string description, string agentId, int maxChannels, int maxPerAgent) => Write((db, tx) =>
    {
        if (Scalar(db, "SELECT 1 FROM channels WHERE name = $n", tx, ("$n", name)) is not null)
            return ChannelCreation.Exists;
        if ((long)Scalar(db, "SELECT COUNT(*) FROM channels", tx)! >= maxChannels)
            return ChannelCreation.HubFull;
        if ((long)Scalar(db, "SELECT COUNT(*) FROM channels WHERE created_by = $a", tx, ("$a", agentId))! >= maxPerAgent)
            return ChannelCreation.AgentLimit;
        Execute(db, "INSERT INTO channels VALUES ($n, $d, $t, $a)", tx, ("$n", name), ("$d", description), ("$t", Now()), ("$a", agentId));
        return ChannelCreation.Created;
    });

    public bool ChannelExists(string name) => Read(db => Scalar(db, "SELECT 1 FROM channels WHERE name = $n", null, ("$n", name)) is not null);

    public List<(string Name, string Description)> Channels() => Read(db =>
    {
        using var cmd = Command(db, "SELECT name, description FROM channels ORDER BY name");
        using var r = cmd.ExecuteReader();
        var list = new List<(string, string)>();
        while (r.Read())
            list.Add((r.GetString(0), r.GetString(1)));
        return list;
    });

    /// <summary>Adds a post (and its parsed result, if it is one) in one transaction; null when replyTo names no post of this channel.</summary>
    public PostRecord? AddPost(string channel, string agentId, string content, long? replyTo = null, ResultLine? result = null)
    {
        string now = Now();
        return Write((db, tx) =>
        {
            if (replyTo is { } parent && Scalar(db, "SELECT 1 FROM posts WHERE id = $p AND channel = $c", tx, ("$p", parent), ("$c", channel)) is null)
                return null;
            long id = (long)Scalar(db, "INSERT INTO posts (channel, agent_id, content, created_at, reply_to) VALUES ($c, $a, $x, $t, $r) RETURNING id", tx,
                ("$c", channel), ("$a", agentId), ("$x", content), ("$t", now), ("$r", replyTo))!;
            if (result is not null)
                InsertResult(db, tx, id, agentId, result, now);
            return new PostRecord(id, channel, agentId, content, now, replyTo);
        });
    }

    /// <summary>The posts of a channel older than the cursor `before` (a post id; null: the newest), newest first.</summary>
    public List<PostRecord> Posts(string channel, int limit, long? before = null) => Read(db => ReadPosts(Command(db,
        $"SELECT {PostColumns} FROM posts WHERE channel = $c AND id < $b ORDER BY id DESC LIMIT $l", null,
        ("$c", channel), ("$b", before ?? long.MaxValue), ("$l", limit))));

    /// <summary>The newest posts of every channel, newest first (the dashboard).</summary>
    public List<PostRecord> LatestPosts(int limit) =>
        Read(db => ReadPosts(Command(db, $"SELECT {PostColumns} FROM posts ORDER BY id DESC LIMIT $l", null, ("$l", limit))));

    public PostRecord? Post(long id) =>
        Read(db => ReadPosts(Command(db, $"SELECT {PostColumns} FROM posts WHERE id = $id", null, ("$id", id))).FirstOrDefault());

    /// <summary>Direct replies to a post, oldest first, after the cursor `after` (a post id).</summary>
    public List<PostRecord> Replies(long postId, int limit, long after = 0) => Read(db => ReadPosts(Command(db,
        $"SELECT {PostColumns} FROM posts WHERE reply_to = $p AND id > $a ORDER BY id LIMIT $l", null, ("$p", postId), ("$a", after), ("$l", limit))));

    /// <summary>The best ranked result per platform over all history (crashes never ranked), best first.</summary>
    public List<(ResultRecord Best, long Runs)> Leaderboard() => Read(db =>
    {
        // SQLite takes the bare columns of a MIN() aggregate from the row that holds the minimum.
        using var cmd = Command(db, $"""
            SELECT post_id, commit_prefix, platform, MIN(val_bpb), vram_gb, status, agent_id, description, created_at, COUNT(*)
            FROM results WHERE status <> 'crash' GROUP BY platform ORDER BY MIN(val_bpb), platform
            """);
        using var r = cmd.ExecuteReader();
        var list = new List<(ResultRecord, long)>();
        while (r.Read())
            list.Add((ReadResult(r), r.GetInt64(9)));
        return list;
    });

    /// <summary>Results, newest first, older than the cursor `before` (a post id), optionally of one platform.</summary>
    public List<ResultRecord> Results(int limit, long? before = null, string? platform = null) => Read(db => ReadResults(Command(db,
        $"SELECT {ResultColumns} FROM results WHERE post_id < $b AND ($p IS NULL OR platform = $p) ORDER BY post_id DESC LIMIT $l", null,
        ("$b", before ?? long.MaxValue), ("$p", platform), ("$l", limit))));

    /// <summary>Every result in posting order (the dashboard's chart computes best-so-far curves from them).</summary>
    public List<ResultRecord> AllResults() => Read(db => ReadResults(Command(db, $"SELECT {ResultColumns} FROM results ORDER BY post_id")));

    /// <summary>The results posted for a known commit (full hash), best first, crashes last.</summary>
    public List<ResultRecord> ResultsFor(string fullHash) => Read(db => ReadResults(Command(db, $"""
        SELECT {ResultColumns} FROM results WHERE commit7 = substr($h, 1, 7) AND substr($h, 1, length(commit_prefix)) = commit_prefix
        ORDER BY status = 'crash', val_bpb
        """, null, ("$h", fullHash))));

    /// <summary>Counts for the dashboard's header.</summary>
    public (long Agents, long Commits, long Leaves, long Posts, long Results) Counts() => Read(db => (
        Count(db, "agents"), Count(db, "commits"), (long)Scalar(db, "SELECT COUNT(*) FROM commits WHERE is_leaf = 1")!,
        Count(db, "posts"), Count(db, "results")));

    private static void InsertResult(SqliteConnection db, SqliteTransaction tx, long postId, string agentId, ResultLine line, string time) =>
        Execute(db, "INSERT OR REPLACE INTO results VALUES ($id, $c, $c7, $p, $v, $m, $s, $a, $d, $t)", tx,
            ("$id", postId), ("$c", line.Commit), ("$c7", line.Commit[..7]), ("$p", line.Platform), ("$v", line.ValBpb), ("$m", line.VramGb),
            ("$s", line.Status), ("$a", agentId), ("$d", line.Description), ("$t", time));

    private static List<PostRecord> ReadPosts(SqliteCommand cmd)
    {
        using (cmd)
        {
            using var r = cmd.ExecuteReader();
            var list = new List<PostRecord>();
            while (r.Read())
                list.Add(new PostRecord(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetInt64(5)));
            return list;
        }
    }

    private static List<ResultRecord> ReadResults(SqliteCommand cmd)
    {
        using (cmd)
        {
            using var r = cmd.ExecuteReader();
            var list = new List<ResultRecord>();
            while (r.Read())
                list.Add(ReadResult(r));
            return list;
        }
    }

    private static ResultRecord ReadResult(SqliteDataReader r) =>
        new(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetDouble(3), r.GetDouble(4), r.GetString(5), r.GetString(6), r.GetString(7), r.GetString(8));
}
