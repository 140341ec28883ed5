using Microsoft.Data.Sqlite;

namespace AutoResearch.Hub;

/// <summary>
/// Commits and their parent links. The frontier is kept as a flag updated on push (is_leaf, under a partial index),
/// so reading the leaves costs the same at 10 commits and at 10,000.
/// </summary>
public sealed partial class HubStore
{
    private const string CommitColumns = "c.seq, c.hash, c.parents, c.agent_id, c.message, c.created_at";

    /// <summary>
    /// Records commits (oldest first) and updates the frontier; returns the hashes that were new (a hash already known is kept as it was).
    /// </summary>
    public List<string> AddCommits(IEnumerable<GitRepository.CommitInfo> commits, string agentId)
    {
        string now = Now();
        return Write((db, tx) =>
        {
            var added = new List<string>();
            foreach (var c in commits)
            {
                int n = Execute(db, """
                    INSERT OR IGNORE INTO commits (hash, parents, agent_id, message, created_at, is_leaf)
                    VALUES ($h, $p, $a, $m, $t, NOT EXISTS (SELECT 1 FROM commit_parents WHERE parent = $h))
                    """, tx, ("$h", c.Hash), ("$p", string.Join(' ', c.Parents)), ("$a", agentId), ("$m", c.Message), ("$t", now));
                if (n == 0)
                    continue;
                added.Add(c.Hash);
                foreach (var parent in c.Parents)
                {
                    Execute(db, "INSERT OR IGNORE INTO commit_parents VALUES ($c, $p)", tx, ("$c", c.Hash), ("$p", parent));
                    Execute(db, "UPDATE commits SET is_leaf = 0 WHERE hash = $p AND is_leaf = 1", tx, ("$p", parent));
                }
            }
            return added;
        });
    }

    /// <summary>The full hash of a known commit from a 7–40 digit prefix; null when unknown or ambiguous.</summary>
    public string? ResolveCommit(string prefix) => Read(db =>
    {
        // A range scan on the unique index: every hash starting with the (validated hex) prefix sorts in [prefix, prefix + "g").
        using var cmd = Command(db, "SELECT hash FROM commits WHERE hash >= $p AND hash < $p || 'g' LIMIT 2", null, ("$p", prefix));
        using var r = cmd.ExecuteReader();
        string? found = null;
        int n = 0;
        while (r.Read())
        {
            found = r.GetString(0);
            n++;
        }
        return n == 1 ? found : null;
    });

    /// <summary>True when every hash is a commit the hub knows.</summary>
    public bool KnowsAll(IEnumerable<string> fullHashes) => Read(db =>
    {
        foreach (var h in fullHashes)
        {
            if (Scalar(db, "SELECT 1 FROM commits WHERE hash = $h", null, ("$h", h)) is null)
                return false;
        }
        return true;
    });

    /// <summary>Commits newest first, older than the cursor `before` (a seq; null: the newest).</summary>
    public List<CommitRecord> Commits(int limit, long? before = null) => Read(db => ReadCommits(Command(db,
        $"SELECT {CommitColumns} FROM commits c WHERE c.seq < $b ORDER BY c.seq DESC LIMIT $l", null, ("$b", before ?? long.MaxValue), ("$l", limit))));

    public CommitRecord? Commit(string fullHash) =>
        Read(db => ReadCommits(Command(db, $"SELECT {CommitColumns} FROM commits c WHERE c.hash = $h", null, ("$h", fullHash))).FirstOrDefault());

    /// <summary>
    /// The frontier (commits nobody has built on), ranked by their best non-crash val_bpb (on one platform if given),
    /// leaves without a result after, newest first among equals.
    /// </summary>
    public List<RankedCommit> Leaves(int limit, string? platform = null) => Read(db =>
    {
        using var cmd = Command(db, $"""
            SELECT {CommitColumns}, r.post_id, r.commit_prefix, r.platform, r.val_bpb, r.vram_gb, r.status, r.agent_id, r.description, r.created_at
            FROM commits c
            LEFT JOIN results r ON r.post_id = (
                SELECT b.post_id FROM results b
                WHERE b.commit7 = substr(c.hash, 1, 7) AND substr(c.hash, 1, length(b.commit_prefix)) = b.commit_prefix
                    AND b.status <> 'crash' AND ($p IS NULL OR b.platform = $p)
                ORDER BY b.val_bpb LIMIT 1)
            WHERE c.is_leaf = 1
            ORDER BY r.val_bpb IS NULL, r.val_bpb, c.seq DESC
            LIMIT $l
            """, null, ("$p", platform), ("$l", limit));
        using var r = cmd.ExecuteReader();
        var list = new List<RankedCommit>();
        while (r.Read())
        {
            ResultRecord? best = r.IsDBNull(6) ? null : new ResultRecord(r.GetInt64(6), r.GetString(7), r.GetString(8), r.GetDouble(9),
                r.GetDouble(10), r.GetString(11), r.GetString(12), r.GetString(13), r.GetString(14));
            list.Add(new RankedCommit(ReadCommit(r), best));
        }
        return list;
    });

    /// <summary>Commits that name the given one as a parent, oldest first.</summary>
    public List<CommitRecord> Children(string fullHash) => Read(db => ReadCommits(Command(db,
        $"SELECT {CommitColumns} FROM commit_parents p JOIN commits c ON c.hash = p.child WHERE p.parent = $h ORDER BY c.seq", null, ("$h", fullHash))));

    /// <summary>Ancestors of a commit (all parents, not only the first), nearest first, at most `limit` of them.</summary>
    public List<CommitRecord> Lineage(string fullHash, int limit) => Read(db => ReadCommits(Command(db, $"""
        WITH RECURSIVE ancestors(hash, depth) AS (
            SELECT parent, 1 FROM commit_parents WHERE child = $h
            UNION
            SELECT p.parent, a.depth + 1 FROM commit_parents p JOIN ancestors a ON p.child = a.hash WHERE a.depth < $l
        )
        SELECT {CommitColumns} FROM ancestors a JOIN commits c ON c.hash = a.hash
        GROUP BY c.hash ORDER BY MIN(a.depth), c.seq DESC LIMIT $l
        """, null, ("$h", fullHash), ("$l", limit))));

    private static List<CommitRecord> ReadCommits(SqliteCommand cmd)
    {
        using (cmd)
        {
            using var r = cmd.ExecuteReader();
            var list = new List<CommitRecord>();
            while (r.Read())
                list.Add(ReadCommit(r));
            return list;
        }
    }

    private static CommitRecord ReadCommit(SqliteDataReader r) =>
        new(r.GetInt64(0), r.GetString(1), r.GetString(2).Split(' ', StringSplitOptions.RemoveEmptyEntries), r.GetString(3), r.GetString(4), r.GetString(5));
}
