using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace AutoResearch.Hub.Load;

/// <summary>
/// GET /api/git/leaves on a hub holding --leaves-commits commits (100 chains, so 100 leaves) and a result for every
/// 5th commit: the frontier ranked by val_bpb, timed one request at a time on an otherwise idle server.
/// </summary>
public static class LeavesBench
{
    public const int Chains = 100;
    public const int Calls = 200;

    public sealed record Figures(int Commits, int Results, Latencies Times);

    public static async Task<Figures> RunAsync(LoadSettings s, string data)
    {
        Directory.CreateDirectory(data);
        var rng = new Random(s.Seed);
        var commits = new List<GitRepository.CommitInfo>(s.LeavesCommits);
        int perChain = Math.Max(1, s.LeavesCommits / Chains);
        for (int chain = 0; chain < Chains; chain++)
        {
            string? parent = null;
            for (int k = 0; k < perChain; k++)
            {
                byte[] bytes = new byte[20];
                rng.NextBytes(bytes);
                string hash = Convert.ToHexStringLower(bytes);
                commits.Add(new GitRepository.CommitInfo(hash, parent is null ? [] : [parent], $"chain {chain} step {k}"));
                parent = hash;
            }
        }
        int results = 0;
        using (var store = new HubStore(Path.Combine(data, "hub.db"), TimeProvider.System))
        {
            store.AddCommits(commits, "seeder");
            for (int i = 0; i < commits.Count; i += 5)
            {
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"commit:{commits[i].Hash[..7]} platform:{(i % 2 == 0 ? "H100" : "A100")} val_bpb:{0.9 + rng.NextDouble() * 0.1:F6} vram_gb:44.0 | seeded");
                ResultLine.TryParse(line, out var parsed);
                store.AddPost("results", "seeder", line, null, parsed);
                results++;
            }
        }
        await using var hub = await HubProcess.StartAsync(data);
        using var http = new HttpClient { BaseAddress = hub.Address };
        using (var r = await http.PostAsJsonAsync("/api/register", new { id = "reader" }))
        {
            r.EnsureSuccessStatusCode();
            string key = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("api_key").GetString()!;
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        var times = new Latencies();
        foreach (var (kind, path) in new[] { ("leaves", "/api/git/leaves?limit=100"), ("leaves-platform", "/api/git/leaves?limit=100&platform=H100") })
        {
            for (int i = 0; i < 20; i++)
                await http.GetStringAsync(path);
            for (int i = 0; i < Calls; i++)
            {
                long t = Stopwatch.GetTimestamp();
                string json = await http.GetStringAsync(path);
                times.Add(kind, Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                if (i == 0 && JsonDocument.Parse(json).RootElement.GetArrayLength() != Chains)
                    throw new InvalidOperationException($"expected {Chains} leaves from {path}");
            }
        }
        return new Figures(commits.Count, results, times);
    }
}
