using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace AutoResearch.Hub.Load;

/// <summary>The Markdown the run leaves in bench/results/.</summary>
public static class Report
{
    public static string Write(LoadSettings s, LoadRun run, LeavesBench.Figures leaves)
    {
        var md = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        md.AppendLine("# Hub load run").AppendLine()
            .AppendLine(inv, $"Machine: {Environment.ProcessorCount}-core {(RuntimeInformation.OSArchitecture == Architecture.X64 ? "x86-64" : RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant())} {OsName()}, {RuntimeInformation.FrameworkDescription}. Commit: {Commit()}.")
            .AppendLine("Server: `autoresearch-hub` as its own process on 127.0.0.1 (default limits, registrations per address raised for one loopback address);")
            .AppendLine("the load generator is another process on the same cores. Made by `dotnet run -c Release --project tests/AutoResearch.Hub.Load -- --out bench/results/hub-load.md`.")
            .AppendLine()
            .AppendLine(inv, $"Load: {s.Agents} agents at once, each {s.Pushes} pushes (a chain of commits on a shared base), {s.Posts} posts (2 of 3 result lines, 1 in 10 of them crashes, some replies; 1 of 3 to discussion) and {s.Reads} API reads")
            .AppendLine(inv, $"(leaves, commits, one commit, posts, results, leaderboard) in random order, with a random pause of 0-{2 * s.ThinkMs} ms before each request;")
            .AppendLine(inv, $"beside them {s.DashboardReaders} clients load `/` {(s.DashboardPauseMs == 0 ? "back to back" : $"every {s.DashboardPauseMs} ms")} for the whole run.")
            .AppendLine("Before the timed run, one agent warms the server up (20 rounds of every read, a post, the dashboard; 5 pushes); those requests are not counted.")
            .AppendLine()
            .AppendLine(inv, $"The run took {run.Seconds:F1} s for {run.Requests:N0} requests ({run.Requests / run.Seconds:F0} per second), of which {run.DashboardPages:N0} dashboard pages; registering the agents took {run.RegisterSeconds:F1} s.")
            .AppendLine()
            .AppendLine("| request | count | p50 ms | p90 ms | p99 ms | max ms |")
            .AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |")
            .AppendLine(run.Times.Row("read", "API reads"))
            .AppendLine(run.Times.Row("post", "posts"))
            .AppendLine(run.Times.Row("push", "pushes"))
            .AppendLine(run.Times.Row("dashboard", "dashboard `/`"))
            .AppendLine()
            .AppendLine(inv, $"Lost: {run.ExpectedPosts - run.FoundPosts} of {run.ExpectedPosts} accepted posts and {run.ExpectedCommits - run.FoundCommits} of {run.ExpectedCommits} pushed commits")
            .AppendLine("(every post and commit read back by paging through `?before=`).")
            .AppendLine(run.Errors.IsEmpty ? "Errors: none (every request answered 2xx)." : "Errors: " + string.Join(", ", run.Errors.Select(e => $"{e.Key}: {e.Value}")))
            .AppendLine()
            .AppendLine(inv, $"## The frontier at {leaves.Commits:N0} commits").AppendLine()
            .AppendLine(inv, $"`GET /api/git/leaves?limit=100` on a hub holding {leaves.Commits:N0} commits in {LeavesBench.Chains} chains ({LeavesBench.Chains} leaves) and {leaves.Results:N0} results,")
            .AppendLine(inv, $"{LeavesBench.Calls} calls one after another after 20 to warm up (client-side time, HTTP on loopback included):")
            .AppendLine()
            .AppendLine("| request | count | p50 ms | p90 ms | p99 ms | max ms |")
            .AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |")
            .AppendLine(leaves.Times.Row("leaves", "leaves, ranked by val_bpb"))
            .AppendLine(leaves.Times.Row("leaves-platform", "leaves, ranked on H100"));
        return md.ToString();
    }

    private static string OsName() => OperatingSystem.IsLinux() ? "Linux" : RuntimeInformation.OSDescription;

    private static string Commit()
    {
        try
        {
            var psi = new ProcessStartInfo("git", ["rev-parse", "--short", "HEAD"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string hash = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? hash : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }
}
