using AutoResearch.Hub;

// autoresearch-hub --data DIR [--urls URL] [--public-dashboard]   |   autoresearch-hub revoke AGENT --data DIR
const string Usage = """
    autoresearch-hub: the shared hub of many agents (SPEC §11): an HTTP API for commits (git bundles) and posts, and a dashboard at /.

    usage:
      autoresearch-hub --data DIR [--urls URL] [--public-dashboard]
      autoresearch-hub revoke AGENT --data DIR

    options:
      --data DIR            folder for the hub's state: hub.db (SQLite), repo.git (bare repository), tmp/ (required)
      --urls URL            address to listen on (default http://127.0.0.1:8080; several separated by ';')
      --public-dashboard    serve the dashboard to anyone (default: it needs an agent's key, like every API read)
      --registrations-per-minute N   per client address (default 10)
      --posts-per-minute N           per agent (default 60)
      --pushes-per-minute N          per agent (default 20)
      -h, --help            this text

    revoke AGENT            revokes an agent's key for good (its commits and posts stay); works while the server runs
    Stops on SIGTERM or Ctrl-C.
    """;
string urls = "http://127.0.0.1:8080";
string? data = null, revoke = null;
var options = new HubOptions { DataDirectory = "" };
for (int i = 0; i < args.Length; i++)
{
    string arg = args[i];
    bool hasValue = i + 1 < args.Length;
    int? limit = arg.EndsWith("-per-minute", StringComparison.Ordinal) && hasValue ? Limit(args[i + 1]) : null;
    switch (arg)
    {
        case "--urls" when hasValue: urls = args[++i]; break;
        case "--data" when hasValue: data = args[++i]; break;
        case "--public-dashboard": options = options with { PublicDashboard = true }; break;
        case "--registrations-per-minute" when limit is { } n: options = options with { RegistrationsPerMinute = n }; i++; break;
        case "--posts-per-minute" when limit is { } n: options = options with { PostsPerMinute = n }; i++; break;
        case "--pushes-per-minute" when limit is { } n: options = options with { PushesPerMinute = n }; i++; break;
        case "revoke" when i == 0 && hasValue: revoke = args[++i]; break;
        case "-h" or "--help":
            Console.WriteLine(Usage);
            return 0;
        default:
            Console.Error.WriteLine(arg.EndsWith("-per-minute", StringComparison.Ordinal)
                ? $"autoresearch-hub: {arg} needs a positive integer"
                : $"autoresearch-hub: unknown or incomplete argument '{arg}'\n\n{Usage}");
            return 2;
    }
}
if (data is null)
{
    Console.Error.WriteLine("autoresearch-hub: --data DIR is required (the folder holding hub.db and repo.git); --help for usage");
    return 2;
}
string dataDirectory = Path.GetFullPath(data);
if (revoke is not null)
{
    using var store = new HubStore(Path.Combine(dataDirectory, "hub.db"), TimeProvider.System);
    if (!store.Revoke(revoke))
    {
        Console.Error.WriteLine($"autoresearch-hub: no agent '{revoke}' with a live key in {dataDirectory}");
        return 1;
    }
    Console.WriteLine($"revoked the key of agent '{revoke}'");
    return 0;
}
// Writes to the database queue on one lock that blocks its thread for the length of a short transaction; with the pool's
// default minimum (one thread per core) a burst of writers would hold every thread and make reads wait for new ones.
ThreadPool.GetMinThreads(out int workers, out int io);
ThreadPool.SetMinThreads(Math.Max(workers, 64), Math.Max(io, 64));
WebApplication app;
try
{
    app = HubServer.Build(options with { DataDirectory = dataDirectory }, urls);
    await app.StartAsync();
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException)
{
    Console.Error.WriteLine($"autoresearch-hub: could not start: {e.Message}");
    return 1;
}
Console.WriteLine($"hub: serving {string.Join(", ", app.Urls)} (pid {Environment.ProcessId}) with data in {dataDirectory}"
    + (options.PublicDashboard ? "; dashboard public" : "; dashboard needs a key"));
await app.WaitForShutdownAsync();
return 0;

static int? Limit(string value) =>
    int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0 ? n : null;
