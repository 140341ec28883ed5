using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch hub ...`: the client of the shared hub (SPEC §11) over HttpClient only, plus `serve`, which starts the
/// separate `autoresearch-hub` executable (ASP.NET Core) so that the runner itself needs only the base .NET runtime.
/// The hub address, the agent and its key come from --url/--agent/--key, else AUTORESEARCH_HUB_URL/_AGENT/_KEY, else the
/// config file written by `register` (see <see cref="HubConfig"/>). Everything the hub sends is cleaned before it is printed.
/// </summary>
public static class HubCommand
{
    private static readonly Option<string?> UrlOption = new("--url")
    {
        Description = "Hub address, e.g. http://127.0.0.1:8080 (default: $AUTORESEARCH_HUB_URL, else the only hub in the config file)",
        Recursive = true,
    };
    private static readonly Option<string?> AgentOption = new("--agent")
    {
        Description = "Which registered agent to act as (default: $AUTORESEARCH_HUB_AGENT, else the only agent saved for the hub)",
        Recursive = true,
    };
    private static readonly Option<string?> KeyOption = new("--key")
    {
        Description = "API key (default: $AUTORESEARCH_HUB_KEY, else the agent's key in the config file)",
        Recursive = true,
    };

    public static Command Create()
    {
        var hub = new Command("hub", "Share commits and results with other agents through a hub server (see program-hub.md).");
        hub.Options.Add(UrlOption);
        hub.Options.Add(AgentOption);
        hub.Options.Add(KeyOption);
        hub.Subcommands.Add(Serve());
        hub.Subcommands.Add(Register());
        hub.Subcommands.Add(Push());
        hub.Subcommands.Add(Fetch());
        hub.Subcommands.Add(Leaves());
        hub.Subcommands.Add(ShowCommit());
        hub.Subcommands.Add(Leaderboard());
        hub.Subcommands.Add(Post());
        hub.Subcommands.Add(Read());
        hub.Subcommands.Add(Agents());
        hub.Subcommands.Add(RotateKey());
        return hub;
    }

    private static Command Serve()
    {
        var urls = new Option<string>("--urls") { Description = "Address to listen on", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var data = new Option<string>("--data") { Description = "Folder for the hub's state (hub.db, repo.git); created if missing", Required = true };
        var publicDashboard = new Option<bool>("--public-dashboard") { Description = "Serve the dashboard at / to anyone (default: it needs an agent's key)" };
        var limits = new[] { "registrations", "posts", "pushes" }.Select(what => new Option<int?>($"--{what}-per-minute")
        {
            Description = what == "registrations" ? "Registrations per client address a minute (default 10)" : $"{char.ToUpperInvariant(what[0])}{what[1..]} per agent a minute (default {(what == "posts" ? 60 : 20)})",
        }).ToArray();
        var command = new Command("serve", "Run the hub server (the autoresearch-hub executable, which needs the ASP.NET Core runtime) until SIGTERM or Ctrl-C.")
        {
            urls, data, publicDashboard,
        };
        foreach (var limit in limits)
            command.Options.Add(limit);
        command.SetAction(parse =>
        {
            var (file, prefix) = LocateServer();
            var args = new List<string>(prefix) { "--urls", parse.GetValue(urls)!, "--data", parse.GetValue(data)! };
            if (parse.GetValue(publicDashboard))
                args.Add("--public-dashboard");
            foreach (var limit in limits)
            {
                if (parse.GetValue(limit) is { } n)
                {
                    if (n < 1)
                        throw new ArgumentException($"{limit.Name}: expected a positive integer, got {n}");
                    args.AddRange([limit.Name, n.ToString(CultureInfo.InvariantCulture)]);
                }
            }
            return HubServerProcess.Run(file, args);
        });
        return command;
    }

    private static Command Register()
    {
        var id = new Option<string>("--id") { Description = "Your agent name: [A-Za-z0-9][A-Za-z0-9_-]{0,63}", Required = true };
        var command = new Command("register", "Create an agent on the hub and save its key in the config file (0600), beside any other agent's.") { id };
        command.SetAction(async (parse, ct) =>
        {
            string url = HubUrl(parse, HubConfig.Load(HubConfig.DefaultPath()));
            string name = parse.GetValue(id)!;
            using var http = Client(url, key: null);
            using var body = JsonBody(new JsonObject { ["id"] = name });
            var json = await Send(http, HttpMethod.Post, "/api/register", body, ct);
            string key = json["api_key"]!.GetValue<string>();
            var config = HubConfig.Update(HubConfig.DefaultPath(), c => c.Set(url, name, key));
            Console.WriteLine($"registered {TerminalText.OneLine(json["id"]?.GetValue<string>())} at {url}; key saved to {config.Path}");
            if (config.Agents(url).Count > 1)
                Console.WriteLine($"several agents are saved for this hub ({string.Join(", ", config.Agents(url))}): pick one with --agent NAME or AUTORESEARCH_HUB_AGENT");
            return 0;
        });
        return command;
    }

    private static Command RotateKey()
    {
        var command = new Command("rotate-key", "Replace your API key with a new one (the old one stops working at once) and save it in the config file.");
        command.SetAction(async (parse, ct) =>
        {
            var (url, agent, key) = Credentials(parse);
            using var http = Client(url, key);
            var json = await Send(http, HttpMethod.Post, "/api/keys/rotate", null, ct);
            string fresh = json["api_key"]!.GetValue<string>();
            string id = json["id"]!.GetValue<string>();
            var config = HubConfig.Update(HubConfig.DefaultPath(), c =>
            {
                if (agent is not null && agent != id)
                    c.Remove(url, agent);
                c.Set(url, id, fresh);
            });
            Console.WriteLine($"new key for {TerminalText.OneLine(id)} saved to {config.Path}; the old key no longer works");
            return 0;
        });
        return command;
    }

    private static Command Push()
    {
        var baseRev = new Option<string?>("--base") { Description = "A commit the hub already has; only commits after it are sent (default: the whole history)" };
        var rev = new Option<string>("--rev") { Description = "What to push", DefaultValueFactory = _ => "HEAD" };
        var repo = new Option<string>("--repo") { Description = "Git repository", DefaultValueFactory = _ => "." };
        var command = new Command("push", "Bundle commits of a git repository and push them to the hub (push only improvements).") { baseRev, rev, repo };
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            string repoPath = parse.GetValue(repo)!, what = parse.GetValue(rev)!;
            string? from = parse.GetValue(baseRev);
            string tip = Git(repoPath, "rev-parse", "--verify", "--quiet", what + "^{commit}").Trim();
            if (from is not null && Git(repoPath, "rev-list", "--count", $"{from}..{tip}").Trim() == "0")
            {
                Console.WriteLine($"nothing new to push: {what} has no commits after {from}");
                return 0;
            }
            string bundle = Path.Combine(Path.GetTempPath(), $"autoresearch-push-{Guid.NewGuid():N}.bundle");
            try
            {
                // A bundle needs a ref: pin the revision under a temporary branch name.
                string refName = $"refs/heads/hub-push-{Guid.NewGuid():N}";
                Git(repoPath, "update-ref", refName, tip);
                try
                {
                    Git(repoPath, "bundle", "create", "--quiet", bundle, from is not null ? $"{from}..{refName}" : refName);
                }
                finally
                {
                    Git(repoPath, "update-ref", "-d", refName);
                }
                using var http = Client(url, key);
                using var content = new ByteArrayContent(await File.ReadAllBytesAsync(bundle, ct));
                var json = await Send(http, HttpMethod.Post, "/api/git/push", content, ct);
                var hashes = json["hashes"]!.AsArray();
                if (hashes.Count == 0)
                {
                    Console.WriteLine($"nothing new to push: the hub already has {tip[..7]} ({what})");
                    return 0;
                }
                Console.WriteLine($"pushed {hashes.Count} new commit(s)");
                foreach (var h in hashes)
                    Console.WriteLine(TerminalText.OneLine(h!.GetValue<string>()));
                return 0;
            }
            finally
            {
                File.Delete(bundle);
            }
        });
        return command;
    }

    private static Command Fetch()
    {
        var hash = new Argument<string>("hash") { Description = "Commit hash (7-40 lowercase hex digits)" };
        var repo = new Option<string>("--repo") { Description = "Git repository to fetch into", DefaultValueFactory = _ => "." };
        var branch = new Option<string?>("--branch") { Description = "Also create this local branch at the fetched commit" };
        var command = new Command("fetch", "Fetch a commit and its history from the hub into refs/remotes/hub/<full hash>.") { hash, repo, branch };
        command.SetAction(async (parse, ct) =>
        {
            string h = parse.GetValue(hash)!;
            if (h.Length is < 7 or > 40 || !h.All(char.IsAsciiHexDigitLower))
                throw new ArgumentException($"hash '{TerminalText.OneLine(h)}': expected 7-40 lowercase hex digits");
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            using var response = await http.GetAsync(new Uri($"/api/git/fetch/{h}", UriKind.Relative), ct);
            await EnsureOk(response, ct);
            string bundle = Path.Combine(Path.GetTempPath(), $"autoresearch-fetch-{Guid.NewGuid():N}.bundle");
            try
            {
                await File.WriteAllBytesAsync(bundle, await response.Content.ReadAsByteArrayAsync(ct), ct);
                string repoPath = parse.GetValue(repo)!;
                string full = Git(repoPath, "bundle", "list-heads", bundle).Split(' ')[0].Trim();
                Git(repoPath, "fetch", "--quiet", bundle, $"refs/hub/{full}:refs/remotes/hub/{full}");
                Console.WriteLine($"fetched {full} as refs/remotes/hub/{full}");
                if (parse.GetValue(branch) is { } name)
                {
                    Git(repoPath, "branch", name, full);
                    Console.WriteLine($"created branch {name} at {full[..7]}");
                }
                else
                {
                    Console.WriteLine($"start from it: git checkout -b autoresearch/<tag> hub/{full}");
                }
                return 0;
            }
            finally
            {
                File.Delete(bundle);
            }
        });
        return command;
    }

    private static Command Leaves()
    {
        var platform = new Option<string?>("--platform") { Description = "Rank by results on this platform only (e.g. H100)" };
        var limit = new Option<int>("--limit") { Description = "How many leaves (1-1000)", DefaultValueFactory = _ => 20 };
        var command = new Command("leaves", "List the frontier (commits nobody has built on yet), best val_bpb first.") { platform, limit };
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            string query = $"/api/git/leaves?limit={parse.GetValue(limit)}" + (parse.GetValue(platform) is { } p ? "&platform=" + Uri.EscapeDataString(p) : "");
            foreach (var c in (await Send(http, HttpMethod.Get, query, null, ct)).AsArray())
            {
                var best = c!["best"];
                string score = best is null ? "   -    " : best["val_bpb"]!.GetValue<double>().ToString("F6", CultureInfo.InvariantCulture);
                string where = best is null ? "" : TerminalText.OneLine(best["platform"]?.GetValue<string>());
                Console.WriteLine($"{Short(Field(c, "hash"))}  {score}  {where,-8}  {Field(c, "agent_id")}  {Field(c, "created_at")}  {Field(c, "message")}");
            }
            return 0;
        });
        return command;
    }

    private static Command ShowCommit()
    {
        var hash = new Argument<string>("hash") { Description = "Commit hash (7-40 lowercase hex digits)" };
        var command = new Command("commit", "Show one commit: its message, parents, children and the results posted for it.") { hash };
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            var c = await Send(http, HttpMethod.Get, $"/api/git/commits/{Uri.EscapeDataString(parse.GetValue(hash)!)}", null, ct);
            Console.WriteLine($"commit {Field(c, "hash")}\nagent  {Field(c, "agent_id")}\npushed {Field(c, "created_at")}\n\n    {Field(c, "message")}\n");
            Console.WriteLine("parents:  " + string.Join(' ', c["parents"]!.AsArray().Select(p => Short(TerminalText.OneLine(p!.GetValue<string>())))));
            Console.WriteLine("children: " + string.Join(' ', c["children"]!.AsArray().Select(p => Short(TerminalText.OneLine(p!.GetValue<string>())))));
            foreach (var r in c["results"]!.AsArray())
                Console.WriteLine(ResultText(r!));
            return 0;
        });
        return command;
    }

    private static Command Leaderboard()
    {
        var command = new Command("leaderboard", "The best result per platform over all history (crashes are never ranked).");
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            foreach (var e in (await Send(http, HttpMethod.Get, "/api/leaderboard", null, ct)).AsArray())
                Console.WriteLine($"{ResultText(e!["best"]!)}  ({e["runs"]} runs)");
            return 0;
        });
        return command;
    }

    private static Command Post()
    {
        var channel = new Argument<string>("channel") { Description = "Channel name, e.g. results or discussion" };
        var content = new Argument<string>("content") { Description = "Text; results use: commit:<7> platform:<gpu> val_bpb:<v> vram_gb:<v> [status:keep|discard|crash] | <description>" };
        var replyTo = new Option<long?>("--reply-to") { Description = "Id of a post in the same channel this one answers" };
        var command = new Command("post", "Post a message to a channel.") { channel, content, replyTo };
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            var body = new JsonObject { ["content"] = parse.GetValue(content) };
            if (parse.GetValue(replyTo) is { } parent)
                body["reply_to"] = parent;
            using var request = JsonBody(body);
            var json = await Send(http, HttpMethod.Post, $"/api/channels/{Uri.EscapeDataString(parse.GetValue(channel)!)}/posts", request, ct);
            Console.WriteLine($"posted #{json["id"]} to {Field(json, "channel")}");
            return 0;
        });
        return command;
    }

    private static Command Read()
    {
        var channel = new Argument<string>("channel") { Description = "Channel name, e.g. results or discussion" };
        var limit = new Option<int>("--limit") { Description = "How many posts, newest first (1-1000)", DefaultValueFactory = _ => 20 };
        var before = new Option<long?>("--before") { Description = "Only posts older than this post id (the next page: the smallest id shown)" };
        var command = new Command("read", "Read the newest posts of a channel, or older ones with --before.") { channel, limit, before };
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            string path = $"/api/channels/{Uri.EscapeDataString(parse.GetValue(channel)!)}/posts?limit={parse.GetValue(limit)}"
                + (parse.GetValue(before) is { } b ? $"&before={b}" : "");
            foreach (var p in (await Send(http, HttpMethod.Get, path, null, ct)).AsArray())
            {
                string reply = p!["reply_to"] is { } r ? $" (reply to #{r})" : "";
                Console.WriteLine($"#{p["id"]}  {Field(p, "created_at")}  {Field(p, "agent_id")}{reply}: {TerminalText.Clean(p["content"]?.GetValue<string>())}");
            }
            return 0;
        });
        return command;
    }

    private static Command Agents()
    {
        var command = new Command("agents", "List the agents registered on the hub.");
        command.SetAction(async (parse, ct) =>
        {
            var (url, _, key) = Credentials(parse);
            using var http = Client(url, key);
            foreach (var a in (await Send(http, HttpMethod.Get, "/api/agents?limit=1000", null, ct)).AsArray())
            {
                string revoked = a!["revoked_at"] is null ? "" : "  (revoked)";
                Console.WriteLine($"{Field(a, "id"),-24} {a["commits"],6} commits {a["posts"],6} posts  since {Field(a, "created_at")}{revoked}");
            }
            return 0;
        });
        return command;
    }

    private static string ResultText(JsonNode r) =>
        $"{r["val_bpb"]!.GetValue<double>().ToString("F6", CultureInfo.InvariantCulture)}  {Field(r, "platform"),-8}  {Field(r, "status"),-7}  "
        + $"{Field(r, "commit")}  {Field(r, "agent_id")}  {Field(r, "description")}";

    /// <summary>A string field of a hub answer, cleaned for the terminal.</summary>
    private static string Field(JsonNode? node, string name) => TerminalText.OneLine(node?[name]?.GetValue<string>());

    /// <summary>The autoresearch-hub executable: $AUTORESEARCH_HUB, beside this program, or the repository's src/Hub build output.</summary>
    private static (string File, string[] Prefix) LocateServer()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("AUTORESEARCH_HUB") is { Length: > 0 } env)
            candidates.Add(env);
        candidates.Add(Path.Combine(AppContext.BaseDirectory, "autoresearch-hub.dll"));
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "AutoResearch.sln")))
            {
                foreach (var config in new[] { "Release", "Debug" })
                    candidates.Add(Path.Combine(dir.FullName, "src", "Hub", "bin", config, "net10.0", "autoresearch-hub.dll"));
                break;
            }
        }
        foreach (var c in candidates)
        {
            if (File.Exists(c))
                return c.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? ("dotnet", [c]) : (c, []);
        }
        throw new FileNotFoundException(
            "the hub server (autoresearch-hub) was not found; looked at: " + string.Join(", ", candidates)
            + ". Build it with `dotnet build src/Hub -c Release` (needs the ASP.NET Core runtime), "
            + "or run it directly: `dotnet run --project src/Hub -c Release -- --urls URL --data DIR`, or set AUTORESEARCH_HUB to its path.");
    }

    private static string HubUrl(ParseResult parse, HubConfig config)
    {
        if ((parse.GetValue(UrlOption) ?? Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_URL")) is { Length: > 0 } url)
            return HubConfig.Normalize(url);
        var hubs = config.Hubs.ToList();
        return hubs.Count switch
        {
            1 => hubs[0],
            0 => throw new ArgumentException("no hub address: pass --url, set AUTORESEARCH_HUB_URL, or run `autoresearch hub register --url URL --id NAME`"),
            _ => throw new ArgumentException($"several hubs in {config.Path} ({string.Join(", ", hubs)}): pass --url or set AUTORESEARCH_HUB_URL"),
        };
    }

    /// <summary>Hub address, agent (null when the key came from --key or the environment) and key.</summary>
    private static (string Url, string? Agent, string Key) Credentials(ParseResult parse)
    {
        string? explicitKey = parse.GetValue(KeyOption) ?? Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_KEY");
        string? explicitAgent = parse.GetValue(AgentOption) ?? Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_AGENT");
        var config = HubConfig.Load(HubConfig.DefaultPath());
        string url = HubUrl(parse, config);
        if (explicitKey is { Length: > 0 })
            return (url, explicitAgent, explicitKey);
        var agents = config.Agents(url);
        string agent = explicitAgent is { Length: > 0 } ? explicitAgent : agents.Count switch
        {
            1 => agents[0],
            0 => throw new ArgumentException($"no API key for {url}: pass --key, set AUTORESEARCH_HUB_KEY, or run `autoresearch hub register --url {url} --id NAME`"),
            _ => throw new ArgumentException($"several agents are saved for {url} in {config.Path} ({string.Join(", ", agents)}): pass --agent NAME or set AUTORESEARCH_HUB_AGENT"),
        };
        string key = config.Key(url, agent)
            ?? throw new ArgumentException($"no key for agent '{agent}' of {url} in {config.Path}; saved agents: {(agents.Count == 0 ? "none" : string.Join(", ", agents))}");
        return (url, agent, key);
    }

    private static StringContent JsonBody(JsonObject body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private static HttpClient Client(string url, string? key)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseUri) || (baseUri.Scheme != Uri.UriSchemeHttp && baseUri.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"--url '{url}': expected an http(s) address like http://127.0.0.1:8080");
        var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromMinutes(5) };
        if (key is not null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    private static async Task<JsonNode> Send(HttpClient http, HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        using var response = await http.SendAsync(request, ct);
        await EnsureOk(response, ct);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync(ct)) ?? throw new InvalidDataException($"{path}: empty answer from the hub");
    }

    private static async Task EnsureOk(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
            return;
        string body = await response.Content.ReadAsStringAsync(ct);
        string message = body;
        try
        {
            message = JsonNode.Parse(body)?["error"]?.GetValue<string>() ?? body;
        }
        catch (JsonException)
        {
        }
        throw new HttpRequestException($"hub answered {(int)response.StatusCode} {response.ReasonPhrase}: {TerminalText.OneLine(message)}");
    }

    private static string Git(string repo, params string[] args)
    {
        var psi = new ProcessStartInfo("git") { WorkingDirectory = repo, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start git: is it installed and on PATH?");
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} in {repo} failed: {err.GetAwaiter().GetResult().Trim()}");
        return output;
    }

    /// <summary>A hash as the listings show it: its first 7 characters (all of it when a hub sends fewer).</summary>
    private static string Short(string hash) => hash.Length > 7 ? hash[..7] : hash;
}
