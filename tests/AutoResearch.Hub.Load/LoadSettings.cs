using System.Globalization;

namespace AutoResearch.Hub.Load;

/// <summary>The load run's knobs, from the command line.</summary>
public sealed record LoadSettings
{
    public int Agents { get; init; } = 200;
    public int Posts { get; init; } = 30;
    public int Pushes { get; init; } = 5;
    public int Reads { get; init; } = 20;
    public int DashboardReaders { get; init; } = 20;

    /// <summary>Mean pause of an agent between two of its requests (uniform 0..2x), in ms.</summary>
    public int ThinkMs { get; init; } = 1000;

    /// <summary>Pause of a dashboard reader between two pages, in ms (0: back to back).</summary>
    public int DashboardPauseMs { get; init; }

    public int LeavesCommits { get; init; } = 10_000;
    public string? Out { get; init; }

    /// <summary>Instead of the load: screenshots of the dashboard at 0, 10 and 2,000 results into this folder.</summary>
    public string? Screenshots { get; init; }
    public int Seed { get; init; } = 19;

    private const string Usage = """
        hub-load [--agents N] [--posts N] [--pushes N] [--reads N] [--dashboard-readers N] [--think-ms MS]
                 [--dashboard-pause-ms MS] [--leaves-commits N] [--seed N] [--out FILE.md]
        hub-load --screenshots DIR
          Starts autoresearch-hub (beside this program) on 127.0.0.1 with a fresh data folder, registers the agents, and runs
          them at once: each makes its pushes (a chain of commits on a shared base), posts (result lines and discussion,
          some replies) and reads (leaves, commits, posts, results, leaderboard, one commit) in random order with a random
          pause (0 to 2x --think-ms) between requests, while the dashboard readers load / in a loop. Then it checks that
          every post and commit is on the hub, and times GET /api/git/leaves on a second hub seeded with --leaves-commits.
          Defaults: 200 agents x (30 posts + 5 pushes + 20 reads), 20 dashboard readers, 1000 ms, 10,000 commits.
          --screenshots DIR: instead, hubs seeded with 0, 10 and 2,000 results photographed by headless Chromium
          (/usr/bin/chromium) into DIR/hub-dashboard-<results>.png.
        """;

    public static LoadSettings? Parse(string[] args)
    {
        var s = new LoadSettings();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] is "-h" or "--help")
            {
                Console.WriteLine(Usage);
                return null;
            }
            if (i + 1 >= args.Length)
            {
                Console.Error.WriteLine($"hub-load: {args[i]} needs a value\n{Usage}");
                return null;
            }
            string v = args[++i];
            if (args[i - 1] is "--out" or "--screenshots")
            {
                s = args[i - 1] == "--out" ? s with { Out = Path.GetFullPath(v) } : s with { Screenshots = Path.GetFullPath(v) };
                continue;
            }
            if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            {
                Console.Error.WriteLine($"hub-load: {args[i - 1]}: expected a non-negative integer, got '{v}'");
                return null;
            }
            switch (args[i - 1])
            {
                case "--agents": s = s with { Agents = n }; break;
                case "--posts": s = s with { Posts = n }; break;
                case "--pushes": s = s with { Pushes = n }; break;
                case "--reads": s = s with { Reads = n }; break;
                case "--dashboard-readers": s = s with { DashboardReaders = n }; break;
                case "--think-ms": s = s with { ThinkMs = n }; break;
                case "--dashboard-pause-ms": s = s with { DashboardPauseMs = n }; break;
                case "--leaves-commits": s = s with { LeavesCommits = n }; break;
                case "--seed": s = s with { Seed = n }; break;
                default:
                    Console.Error.WriteLine($"hub-load: unknown option {args[i - 1]}\n{Usage}");
                    return null;
            }
        }
        return s;
    }
}
