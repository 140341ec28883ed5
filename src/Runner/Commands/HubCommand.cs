using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch hub ...`: the client of the shared hub (SPEC §11) over HttpClient only, plus `serve`, which starts the
/// separate `autoresearch-hub` executable (ASP.NET Core) so that the runner itself needs only the base .NET runtime.
/// The url and key come from --url/--key, else AUTORESEARCH_HUB_URL/AUTORESEARCH_HUB_KEY, else the config file
/// written by `register` (AUTORESEARCH_HUB_CONFIG or ~/.config/autoresearch/hub.json, mode 0600).
/// </summary>
public static class HubCommand
{
    private static readonly Option<string?> UrlOption = new("--url") { Description = "Hub address, e.g. http://127.0.0.1:8080 (default: $AUTORESEARCH_HUB_URL or the config file)", Recursive = true };
    private static readonly Option<string?> KeyOption = new("--key") { Description = "API key (default: $AUTORESEARCH_HUB_KEY or the config file)", Recursive = true };

    public static Command Create()
    {
        var hub = new Command("hub", "Share commits and results with other agents through a hub server (see program-hub.md).");
        hub.Options.Add(UrlOption);
        hub.Options.Add(KeyOption);
        hub.Subcommands.Add(Serve());
        hub.Subcommands.Add(Register());
        hub.Subcommands.Add(Push());
        hub.Subcommands.Add(Fetch());
        hub.Subcommands.Add(Leaves());
        hub.Subcommands.Add(Post());
        hub.Subcommands.Add(Read());
        return hub;
    }

    private static Command Serve()
    {
        var urls = new Option<string>("--urls") { Description = "Address to listen on", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var data = new Option<string>("--data") { Description = "Folder for the hub's state (hub.db, repo.git)", Required = true };
        var command = new Command("serve", "Run the hub server (the autoresearch-hub executable, which needs the ASP.NET Core runtime).") { urls, data };
        command.SetAction(parse =>
        {
            var (file, prefix) = LocateServer();
            var psi = new ProcessStartInfo(file) { UseShellExecute = false };
            foreach (var a in prefix)
                psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("--urls");
            psi.ArgumentList.Add(parse.GetValue(urls)!);
            psi.ArgumentList.Add("--data");
            psi.ArgumentList.Add(parse.GetValue(data)!);
            using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
            p.WaitForExit();
            return p.ExitCode;
        });
        return command;
    }

    private static Command Register()
    {
        var id = new Option<string>("--id") { Description = "Your agent name: [A-Za-z0-9][A-Za-z0-9_-]{0,63}", Required = true };
        var command = new Command("register", "Create an agent on the hub and save the url and key to the config file (0600).") { id };
        command.SetAction(async (parse, ct) =>
        {
            string url = Url(parse);
            using var http = Client(url, key: null);
            using var body = new StringContent(new JsonObject { ["id"] = parse.GetValue(id) }.ToJsonString(), Encoding.UTF8, "application/json");
            var json = await Send(http, HttpMethod.Post, "/api/register", body, ct);
            string key = json["api_key"]!.GetValue<string>();
            string path = SaveConfig(url, key);
            Console.WriteLine($"registered {json["id"]}; url and key saved to {path}");
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
            string bundle = Path.Combine(Path.GetTempPath(), $"autoresearch-push-{Guid.NewGuid():N}.bundle");
            try
            {
                // A bundle needs a ref: pin the revision under a temporary branch name.
                string refName = $"refs/heads/hub-push-{Guid.NewGuid():N}";
                string repoPath = parse.GetValue(repo)!;
                Git(repoPath, "update-ref", refName, parse.GetValue(rev)!);
                try
                {
                    Git(repoPath, "bundle", "create", "--quiet", bundle, parse.GetValue(baseRev) is { } from ? $"{from}..{refName}" : refName);
                }
                finally
                {
                    Git(repoPath, "update-ref", "-d", refName);
                }
                using var http = Client(Url(parse), Key(parse));
                using var content = new ByteArrayContent(await File.ReadAllBytesAsync(bundle, ct));
                var json = await Send(http, HttpMethod.Post, "/api/git/push", content, ct);
                var hashes = json["hashes"]!.AsArray();
                Console.WriteLine($"pushed {hashes.Count} new commit(s)");
                foreach (var h in hashes)
                    Console.WriteLine(h!.GetValue<string>());
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
        var hash = new Argument<string>("hash") { Description = "Commit hash (7-40 hex digits)" };
        var repo = new Option<string>("--repo") { Description = "Git repository to fetch into", DefaultValueFactory = _ => "." };
        var command = new Command("fetch", "Fetch a commit from the hub into a local repository as refs/remotes/hub/<hash>.") { hash, repo };
        command.SetAction(async (parse, ct) =>
        {
            string h = parse.GetValue(hash)!;
            if (h.Length is < 7 or > 40 || !h.All(char.IsAsciiHexDigitLower))
                throw new ArgumentException($"hash '{h}': expected 7-40 lowercase hex digits");
            using var http = Client(Url(parse), Key(parse));
            using var response = await http.GetAsync(new Uri($"/api/git/fetch/{h}", UriKind.Relative), ct);
            await EnsureOk(response, ct);
            string bundle = Path.Combine(Path.GetTempPath(), $"autoresearch-fetch-{Guid.NewGuid():N}.bundle");
            try
            {
                await File.WriteAllBytesAsync(bundle, await response.Content.ReadAsByteArrayAsync(ct), ct);
                Git(parse.GetValue(repo)!, "fetch", "--quiet", bundle, "refs/hub/*:refs/remotes/hub/*");
                Console.WriteLine($"fetched {h} into refs/remotes/hub/ (git checkout -b <branch> hub/<full hash>)");
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
        var command = new Command("leaves", "List the frontier: commits nobody has built on yet.");
        command.SetAction(async (parse, ct) =>
        {
            using var http = Client(Url(parse), Key(parse));
            foreach (var c in (await Send(http, HttpMethod.Get, "/api/git/leaves", null, ct)).AsArray())
                Console.WriteLine($"{c!["hash"]!.GetValue<string>()[..7]}  {c["agent_id"]}  {c["created_at"]}  {c["message"]}");
            return 0;
        });
        return command;
    }

    private static Command Post()
    {
        var channel = new Argument<string>("channel") { Description = "Channel name, e.g. results or discussion" };
        var content = new Argument<string>("content") { Description = "Text; results use: commit:<7> platform:<gpu> val_bpb:<v> vram_gb:<v> | <description>" };
        var command = new Command("post", "Post a message to a channel.") { channel, content };
        command.SetAction(async (parse, ct) =>
        {
            using var http = Client(Url(parse), Key(parse));
            using var body = new StringContent(new JsonObject { ["content"] = parse.GetValue(content) }.ToJsonString(), Encoding.UTF8, "application/json");
            var json = await Send(http, HttpMethod.Post, $"/api/channels/{Uri.EscapeDataString(parse.GetValue(channel)!)}/posts", body, ct);
            Console.WriteLine($"posted #{json["id"]} to {json["channel"]}");
            return 0;
        });
        return command;
    }

    private static Command Read()
    {
        var channel = new Argument<string>("channel") { Description = "Channel name, e.g. results or discussion" };
        var limit = new Option<int>("--limit") { Description = "How many posts, newest first (1-1000)", DefaultValueFactory = _ => 20 };
        var command = new Command("read", "Read the newest posts of a channel.") { channel, limit };
        command.SetAction(async (parse, ct) =>
        {
            using var http = Client(Url(parse), Key(parse));
            string path = $"/api/channels/{Uri.EscapeDataString(parse.GetValue(channel)!)}/posts?limit={parse.GetValue(limit)}";
            foreach (var p in (await Send(http, HttpMethod.Get, path, null, ct)).AsArray())
                Console.WriteLine($"{p!["created_at"]}  {p["agent_id"]}: {p["content"]}");
            return 0;
        });
        return command;
    }

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

    private static string ConfigPath() =>
        Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_CONFIG") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "autoresearch", "hub.json");

    private static JsonObject? LoadConfig()
    {
        string path = ConfigPath();
        return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
    }

    /// <summary>Writes the config to a temporary file created with mode 0600, then renames it into place.</summary>
    private static string SaveConfig(string url, string key)
    {
        string path = ConfigPath();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(tmp, options))
        {
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(stream.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            stream.Write(Encoding.UTF8.GetBytes(new JsonObject { ["url"] = url, ["api_key"] = key }.ToJsonString()));
        }
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    private static string Url(ParseResult parse) =>
        parse.GetValue(UrlOption) ?? Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_URL") ?? LoadConfig()?["url"]?.GetValue<string>()
        ?? throw new ArgumentException("no hub address: pass --url, set AUTORESEARCH_HUB_URL, or run `autoresearch hub register --url URL --id NAME`");

    private static string Key(ParseResult parse) =>
        parse.GetValue(KeyOption) ?? Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_KEY") ?? LoadConfig()?["api_key"]?.GetValue<string>()
        ?? throw new ArgumentException("no API key: pass --key, set AUTORESEARCH_HUB_KEY, or run `autoresearch hub register --url URL --id NAME`");

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
        throw new HttpRequestException($"hub answered {(int)response.StatusCode} {response.ReasonPhrase}: {message}");
    }

    private static void Git(string repo, params string[] args)
    {
        var psi = new ProcessStartInfo("git") { WorkingDirectory = repo, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start git: is it installed and on PATH?");
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} in {repo} failed: {err.Trim()}");
    }
}
