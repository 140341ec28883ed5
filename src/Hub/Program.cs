using AutoResearch.Hub;

// autoresearch-hub --urls http://127.0.0.1:8080 --data DIR
string urls = "http://127.0.0.1:8080";
string? data = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--urls" when i + 1 < args.Length: urls = args[++i]; break;
        case "--data" when i + 1 < args.Length: data = args[++i]; break;
        case "-h" or "--help":
            Console.WriteLine("autoresearch-hub --urls http://127.0.0.1:8080 --data DIR\n  Serves the hub API (SPEC §11) and a dashboard at /; state (SQLite + bare git repo) lives in DIR.");
            return 0;
        default:
            Console.Error.WriteLine($"autoresearch-hub: unknown argument '{args[i]}' (expected --urls URL --data DIR)");
            return 1;
    }
}
if (data is null)
{
    Console.Error.WriteLine("autoresearch-hub: --data DIR is required (the folder holding hub.db and repo.git)");
    return 1;
}
var app = HubServer.Build(new HubOptions { DataDirectory = Path.GetFullPath(data) }, urls);
await app.StartAsync();
Console.WriteLine($"hub: serving {string.Join(", ", app.Urls)} with data in {Path.GetFullPath(data)}");
await app.WaitForShutdownAsync();
return 0;
