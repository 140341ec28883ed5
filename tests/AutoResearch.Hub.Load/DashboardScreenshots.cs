using System.Diagnostics;
using System.Globalization;

namespace AutoResearch.Hub.Load;

/// <summary>
/// Screenshots of the dashboard in headless Chromium at 0, 10 and 2,000 results: a hub seeded with a plausible history
/// (agents on four platforms over three days, kept, discarded and crashed runs, pushed commits, discussion with replies)
/// is started with --public-dashboard (Chromium's --screenshot cannot send a key) and photographed.
/// </summary>
public static class DashboardScreenshots
{
    public const string Chromium = "/usr/bin/chromium";
    private static readonly (string Name, double Baseline, double Share)[] Platforms = [("H100", 1.000, 0.5), ("A100", 1.035, 0.25), ("H200", 0.990, 0.15), ("RTX4090", 1.085, 0.10)];

    public static async Task<int> RunAsync(string outDirectory, string work)
    {
        if (!File.Exists(Chromium))
        {
            Console.Error.WriteLine($"hub-load: {Chromium} is missing (apt-get install chromium)");
            return 1;
        }
        Directory.CreateDirectory(outDirectory);
        foreach (int results in new[] { 0, 10, 2000 })
        {
            string data = Path.Combine(work, $"screens-{results}");
            Seed(data, results);
            await using var hub = await HubProcess.StartAsync(data, "--public-dashboard");
            string file = Path.Combine(outDirectory, $"hub-dashboard-{results}.png");
            using (var http = new HttpClient { BaseAddress = hub.Address })
            {
                string page = await http.GetStringAsync("/");
                Console.WriteLine($"hub-load: {results} results: the page is {page.Length / 1024} KiB");
                if (Environment.GetEnvironmentVariable("HUB_LOAD_KEEP_PAGE") is { Length: > 0 } keep)
                    await File.WriteAllTextAsync(Path.Combine(keep, $"dashboard-{results}.html"), page);
            }
            Screenshot(hub.Address, file, Path.Combine(work, $"chromium-{results}"));
            Console.WriteLine($"hub-load: {file} ({new FileInfo(file).Length / 1024} KiB)");
        }
        return 0;
    }

    private static void Screenshot(Uri address, string file, string profile)
    {
        var psi = new ProcessStartInfo(Chromium) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", $"--user-data-dir={profile}", "--window-size=1280,2300",
            "--force-device-scale-factor=0.7",
            $"--screenshot={file}", address.ToString() })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEndAsync();
        p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
            p.Kill(entireProcessTree: true);
        if (!File.Exists(file))
            throw new InvalidOperationException($"chromium wrote no {file}");
        // Debian's pngquant, where installed, makes the picture a quarter of its size (a 256-colour palette).
        if (File.Exists("/usr/bin/pngquant"))
        {
            using var quant = Process.Start("/usr/bin/pngquant", ["--force", "--skip-if-larger", "--ext", ".png", "--quality", "70-95", file]);
            quant.WaitForExit();
        }
    }

    private static void Seed(string data, int results)
    {
        Directory.CreateDirectory(data);
        var rng = new Random(2026);
        var clock = new SettableTime();
        var end = DateTimeOffset.UtcNow;
        var start = end.AddHours(-72);
        using var store = new HubStore(Path.Combine(data, "hub.db"), clock);
        string[] agents = ["ada", "bohr", "curie", "dirac", "euler", "fermi", "gauss", "hopper"];
        clock.Now = start.AddMinutes(-30);
        foreach (var a in agents)
            store.Register(a);
        var best = Platforms.ToDictionary(p => p.Name, p => p.Baseline);
        string? tip = null;
        long lastResultPost = 0;
        for (int i = 0; i < results; i++)
        {
            clock.Now = start + (end - start) * ((i + 1.0) / (results + 1));
            string agent = agents[rng.Next(agents.Length)];
            string platform = Pick(rng);
            double current = best[platform];
            // Most runs are a little worse than the best; one in six beats it, by less as the best nears its platform's floor.
            double floor = Platforms.First(p => p.Name == platform).Baseline - 0.08;
            double bpb = Math.Round(rng.NextDouble() < 0.16
                ? current - rng.NextDouble() * 0.12 * (current - floor)
                : current + rng.NextDouble() * rng.NextDouble() * 0.04, 6);
            string status = rng.NextDouble() < 0.08 ? "crash" : bpb < current ? "keep" : "discard";
            string commit;
            if (status == "keep")
            {
                best[platform] = bpb;
                byte[] bytes = new byte[20];
                rng.NextBytes(bytes);
                commit = Convert.ToHexStringLower(bytes);
                store.AddCommits([new GitRepository.CommitInfo(commit, tip is null ? [] : [tip], Describe(rng))], agent);
                tip = rng.NextDouble() < 0.7 ? commit : tip;
            }
            else
            {
                byte[] bytes = new byte[4];
                rng.NextBytes(bytes);
                commit = Convert.ToHexStringLower(bytes)[..7];
            }
            string line = status == "crash"
                ? $"commit:{commit[..7]} platform:{platform} val_bpb:0.000000 vram_gb:0.0 status:crash | {Describe(rng)} (OOM)"
                : string.Create(CultureInfo.InvariantCulture, $"commit:{commit[..7]} platform:{platform} val_bpb:{bpb:F6} vram_gb:{40 + rng.NextDouble() * 8:F1} status:{status} | {Describe(rng)}");
            ResultLine.TryParse(line, out var parsed);
            lastResultPost = store.AddPost("results", agent, line, null, parsed)!.Id;
            if (i % 12 == 5)
            {
                var note = store.AddPost("discussion", agent, $"{platform}: {Describe(rng)} looks promising; who has tried it with a longer warm-down?");
                if (rng.NextDouble() < 0.5)
                {
                    clock.Now += TimeSpan.FromMinutes(3);
                    store.AddPost("discussion", agents[rng.Next(agents.Length)], "Tried it on H100 yesterday: no gain past 0.2, see the results channel.", note!.Id);
                }
            }
        }
        if (results > 0)
        {
            clock.Now = end;
            store.AddPost("results", agents[0], "Reading the frontier: I'll take the best H100 leaf next.", lastResultPost);
        }
    }

    private static string Pick(Random rng)
    {
        double u = rng.NextDouble();
        foreach (var (name, _, share) in Platforms)
        {
            if ((u -= share) < 0)
                return name;
        }
        return Platforms[0].Name;
    }

    private static readonly string[] Ideas = ["lr 0.04 -> 0.05", "warm-down 0.5 -> 0.6", "depth 8 -> 9", "window pattern SSSL -> SSLL", "muon momentum 0.95 -> 0.97",
        "value embeddings on every layer", "weight decay 0.2 -> 0.1", "x0 lambda 0.1 -> 0.2", "head dim 128 -> 96", "batch 2^19 -> 2^18", "rotary base 10k -> 50k",
        "softcap 15 -> 20", "mlp ratio 4 -> 5", "qk-norm off", "adam beta2 0.95 -> 0.99"];

    private static string Describe(Random rng) => Ideas[rng.Next(Ideas.Length)];

    /// <summary>A clock the seeding moves by hand, so that results spread over days.</summary>
    private sealed class SettableTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UtcNow;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
