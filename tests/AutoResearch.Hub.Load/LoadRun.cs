using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace AutoResearch.Hub.Load;

/// <summary>The load itself: agents pushing, posting and reading at once beside dashboard readers; then the loss check.</summary>
public sealed class LoadRun
{
    public required Latencies Times { get; init; }
    public required ConcurrentDictionary<string, int> Errors { get; init; }
    public required double Seconds { get; init; }
    public required long Requests { get; init; }
    public required int ExpectedPosts { get; init; }
    public required int ExpectedCommits { get; init; }
    public required int FoundPosts { get; init; }
    public required int FoundCommits { get; init; }
    public required int DashboardPages { get; init; }
    public required double RegisterSeconds { get; init; }
    public int Lost => ExpectedPosts - FoundPosts + ExpectedCommits - FoundCommits;

    private static readonly string[] Platforms = ["H100", "H200", "A100", "RTX4090"];

    public static async Task<LoadRun> RunAsync(LoadSettings s, string work)
    {
        Console.WriteLine("hub-load: making the histories");
        var histories = Histories.Make(Path.Combine(work, "source.git"), s.Agents, s.Pushes, s.Seed);
        string limits = (s.Agents * 10).ToString(CultureInfo.InvariantCulture);
        // Registration comes from one address here (loopback): its per-address limit is raised; posts and pushes keep the defaults.
        await using var hub = await HubProcess.StartAsync(Path.Combine(work, "hub"), "--registrations-per-minute", limits);
        // Like a browser, the clients accept gzip (the dashboard is sent compressed to those that do).
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = int.MaxValue,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            AutomaticDecompression = System.Net.DecompressionMethods.GZip,
        };
        using var http = new HttpClient(handler, disposeHandler: false) { BaseAddress = hub.Address, Timeout = TimeSpan.FromMinutes(5) };

        var clock = Stopwatch.StartNew();
        string[] keys = new string[s.Agents + 1];
        await Parallel.ForAsync(0, s.Agents + 1, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            using var r = await http.PostAsJsonAsync("/api/register", new { id = i == s.Agents ? "seed" : $"agent-{i:D3}" }, ct);
            r.EnsureSuccessStatusCode();
            keys[i] = JsonDocument.Parse(await r.Content.ReadAsStringAsync(ct)).RootElement.GetProperty("api_key").GetString()!;
        });
        double registerSeconds = clock.Elapsed.TotalSeconds;
        using (var r = await Send(http, HttpMethod.Post, "/api/git/push", keys[s.Agents], new ByteArrayContent(histories.BaseBundle)))
            r.EnsureSuccessStatusCode();

        // Warm-up, not timed: every kind of request a few times, so that the run measures the server, not its JIT.
        string seedKey = keys[s.Agents];
        for (int w = 0; w < 20; w++)
        {
            foreach (var path in new[] { "/api/git/leaves?limit=20", "/api/channels/results/posts?limit=50", "/api/git/commits?limit=20", "/api/leaderboard",
                "/api/results?limit=50&platform=H100", $"/api/git/commits/{histories.BaseHash}", "/api/channels/discussion/posts?limit=20", "/" })
            {
                using var r = await Send(http, HttpMethod.Get, path, seedKey, null);
                await r.Content.CopyToAsync(Stream.Null);
            }
            using (var r = await Send(http, HttpMethod.Post, "/api/channels/discussion/posts", seedKey, JsonContent.Create(new { content = $"warm-up {w}" })))
                r.EnsureSuccessStatusCode();
            if (w < 5)
            {
                using var r = await Send(http, HttpMethod.Post, "/api/git/push", seedKey, new ByteArrayContent(histories.BaseBundle));
                r.EnsureSuccessStatusCode();
            }
        }

        var times = new Latencies();
        var errors = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var expectedPosts = new ConcurrentBag<string>();
        long requests = 0;
        using var stopReaders = new CancellationTokenSource();
        int dashboardPages = 0;
        Console.WriteLine($"hub-load: registered {s.Agents} agents in {registerSeconds:F1} s; running");
        clock.Restart();
        var readers = Enumerable.Range(0, s.DashboardReaders).Select(d => Task.Run(async () =>
        {
            while (!stopReaders.IsCancellationRequested)
            {
                var (code, ms) = await Timed(http, HttpMethod.Get, "/", keys[d % s.Agents], null);
                times.Add("dashboard", ms);
                Count(errors, "GET /", code);
                Interlocked.Increment(ref dashboardPages);
                Interlocked.Increment(ref requests);
                if (s.DashboardPauseMs > 0)
                    await Task.Delay(s.DashboardPauseMs);
            }
        })).ToArray();

        var agents = Enumerable.Range(0, s.Agents).Select(i => Task.Run(async () =>
        {
            var rng = new Random(s.Seed * 1000 + i);
            var ops = new List<char>();
            ops.AddRange(Enumerable.Repeat('u', s.Pushes));
            ops.AddRange(Enumerable.Repeat('p', s.Posts));
            ops.AddRange(Enumerable.Repeat('r', s.Reads));
            rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ops));
            int pushed = 0, posted = 0;
            long lastPost = 0;
            string key = keys[i];
            string platform = Platforms[i % Platforms.Length];
            foreach (var op in ops)
            {
                await Task.Delay(rng.Next(0, 2 * s.ThinkMs + 1));
                switch (op)
                {
                    case 'u':
                        {
                            var (code, ms) = await Timed(http, HttpMethod.Post, "/api/git/push", key, new ByteArrayContent(histories.Bundles[i][pushed]));
                            times.Add("push", ms);
                            Count(errors, "POST push", code);
                            pushed++;
                            break;
                        }
                    case 'p':
                        {
                            string content;
                            string channel = "results";
                            long? replyTo = null;
                            if (posted % 3 == 2)
                            {
                                channel = "discussion";
                                content = $"agent {i} note {posted}: trying a wider MLP next";
                            }
                            else
                            {
                                string commit = pushed > 0 ? histories.Hashes[i][pushed - 1][..7] : histories.BaseHash[..7];
                                double bpb = posted % 10 == 9 ? 0 : 0.95 + rng.NextDouble() * 0.1 - pushed * 0.005;
                                string status = bpb == 0 ? "crash" : rng.Next(3) == 0 ? "discard" : "keep";
                                content = string.Create(CultureInfo.InvariantCulture,
                                    $"commit:{commit} platform:{platform} val_bpb:{bpb:F6} vram_gb:{(bpb == 0 ? 0 : 44.2):F1} status:{status} | agent {i} run {posted}");
                                if (posted % 5 == 4 && lastPost > 0)
                                    replyTo = lastPost;
                            }
                            var (code, ms, id) = await TimedPost(http, $"/api/channels/{channel}/posts", key, content, replyTo);
                            times.Add("post", ms);
                            Count(errors, "POST post", code);
                            if (code == 201)
                            {
                                expectedPosts.Add(content);
                                if (channel == "results")
                                    lastPost = id;
                            }
                            posted++;
                            break;
                        }
                    default:
                        {
                            string path = rng.Next(7) switch
                            {
                                0 => "/api/git/leaves?limit=20",
                                1 => "/api/channels/results/posts?limit=50",
                                2 => "/api/git/commits?limit=20",
                                3 => "/api/leaderboard",
                                4 => $"/api/results?limit=50&platform={platform}",
                                5 => $"/api/git/commits/{(pushed > 0 ? histories.Hashes[i][pushed - 1] : histories.BaseHash)}",
                                _ => "/api/channels/discussion/posts?limit=20",
                            };
                            var (code, ms) = await Timed(http, HttpMethod.Get, path, key, null);
                            times.Add("read", ms);
                            Count(errors, "GET " + path.Split('?')[0].Split('/')[2], code);
                            break;
                        }
                }
                Interlocked.Increment(ref requests);
            }
        })).ToArray();
        await Task.WhenAll(agents);
        double seconds = clock.Elapsed.TotalSeconds;
        await stopReaders.CancelAsync();
        await Task.WhenAll(readers);

        // Nothing lost: every accepted post and every pushed commit is on the hub, found by paging through everything.
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var channel in new[] { "results", "discussion" })
        {
            string url = $"/api/channels/{channel}/posts?limit=1000";
            while (true)
            {
                using var r = await Send(http, HttpMethod.Get, url, keys[0], null);
                var page = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
                foreach (var p in page.EnumerateArray())
                    found.Add(p.GetProperty("content").GetString()!);
                if (page.GetArrayLength() < 1000)
                    break;
                url = $"/api/channels/{channel}/posts?limit=1000&before={page[page.GetArrayLength() - 1].GetProperty("id").GetInt64()}";
            }
        }
        int foundPosts = expectedPosts.Count(found.Contains);
        var commits = new HashSet<string>(StringComparer.Ordinal);
        string commitsUrl = "/api/git/commits?limit=1000";
        while (true)
        {
            using var r = await Send(http, HttpMethod.Get, commitsUrl, keys[0], null);
            var page = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
            foreach (var c in page.EnumerateArray())
                commits.Add(c.GetProperty("hash").GetString()!);
            if (page.GetArrayLength() < 1000)
                break;
            commitsUrl = $"/api/git/commits?limit=1000&before={page[page.GetArrayLength() - 1].GetProperty("seq").GetInt64()}";
        }
        int foundCommits = histories.Hashes.SelectMany(h => h).Count(commits.Contains);
        return new LoadRun
        {
            Times = times,
            Errors = errors,
            Seconds = seconds,
            Requests = requests,
            ExpectedPosts = expectedPosts.Count,
            ExpectedCommits = s.Agents * s.Pushes,
            FoundPosts = foundPosts,
            FoundCommits = foundCommits,
            DashboardPages = dashboardPages,
            RegisterSeconds = registerSeconds,
        };
    }

    private static void Count(ConcurrentDictionary<string, int> errors, string what, int code)
    {
        if (code is < 200 or > 299)
            errors.AddOrUpdate($"{what} -> {code}", 1, (_, n) => n + 1);
    }

    private static async Task<HttpResponseMessage> Send(HttpClient http, HttpMethod method, string path, string key, HttpContent? content)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await http.SendAsync(request);
    }

    private static async Task<(int Code, double Ms)> Timed(HttpClient http, HttpMethod method, string path, string key, HttpContent? content)
    {
        long t = Stopwatch.GetTimestamp();
        try
        {
            using var r = await Send(http, method, path, key, content);
            await r.Content.CopyToAsync(Stream.Null);
            return ((int)r.StatusCode, Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }
        catch (HttpRequestException)
        {
            return (0, Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }
    }

    private static async Task<(int Code, double Ms, long Id)> TimedPost(HttpClient http, string path, string key, string content, long? replyTo)
    {
        long t = Stopwatch.GetTimestamp();
        try
        {
            using var r = await Send(http, HttpMethod.Post, path, key, JsonContent.Create(new { content, reply_to = replyTo }));
            string body = await r.Content.ReadAsStringAsync();
            double ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            long id = r.IsSuccessStatusCode ? JsonDocument.Parse(body).RootElement.GetProperty("id").GetInt64() : 0;
            return ((int)r.StatusCode, ms, id);
        }
        catch (HttpRequestException)
        {
            return (0, Stopwatch.GetElapsedTime(t).TotalMilliseconds, 0);
        }
    }
}
