using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AutoResearch.Runner;

/// <summary>
/// The CLI's saved hub keys: one file (AUTORESEARCH_HUB_CONFIG, else ~/.config/autoresearch/hub.json, mode 0600) keyed by
/// hub address and agent id, so that several agents on one host never overwrite each other's keys:
/// {"hubs": {"http://127.0.0.1:8080": {"agents": {"agent-7": {"api_key": "..."}}}}}.
/// Written to a temporary file and renamed into place, under a lock file so that two registrations at once lose nothing.
/// A file of the first format ({"url", "api_key"}, no agent id) is read as agent "legacy" of that hub.
/// </summary>
public sealed class HubConfig
{
    public const string LegacyAgent = "legacy";

    private readonly JsonObject _hubs;

    private HubConfig(string path, JsonObject hubs)
    {
        Path = path;
        _hubs = hubs;
    }

    public string Path { get; }

    public static string DefaultPath() =>
        Environment.GetEnvironmentVariable("AUTORESEARCH_HUB_CONFIG") is { Length: > 0 } p ? p
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "autoresearch", "hub.json");

    /// <summary>Reads the file (an empty config when there is none); a damaged file is an error that names it.</summary>
    public static HubConfig Load(string path)
    {
        if (!File.Exists(path))
            return new HubConfig(path, []);
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw Corrupt(path, e.Message);
        }
        if (root is not JsonObject obj)
            throw Corrupt(path, "expected a JSON object");
        try
        {
            if (obj["hubs"] is JsonObject hubs)
            {
                foreach (var (url, hub) in hubs)
                {
                    if (hub?["agents"] is not JsonObject agents)
                        throw Corrupt(path, $"hub '{url}' has no \"agents\" object");
                    foreach (var (id, agent) in agents)
                    {
                        if (agent?["api_key"]?.GetValue<string>() is not { Length: > 0 })
                            throw Corrupt(path, $"agent '{id}' of hub '{url}' has no \"api_key\" string");
                    }
                }
                return new HubConfig(path, (JsonObject)hubs.DeepClone());
            }
            if (obj["url"]?.GetValue<string>() is { } legacyUrl && obj["api_key"]?.GetValue<string>() is { } legacyKey)
            {
                var config = new HubConfig(path, []);
                config.Set(legacyUrl, LegacyAgent, legacyKey);
                return config;
            }
        }
        catch (InvalidOperationException e)
        {
            throw Corrupt(path, e.Message);
        }
        throw Corrupt(path, "expected {\"hubs\": {URL: {\"agents\": {ID: {\"api_key\": KEY}}}}}");
    }

    /// <summary>Loads, changes and saves the file while holding its lock file (another process doing the same waits).</summary>
    public static HubConfig Update(string path, Action<HubConfig> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        using var lockFile = AcquireLock(path + ".lock");
        var config = Load(path);
        change(config);
        config.Save();
        return config;
    }

    public IEnumerable<string> Hubs => _hubs.Select(h => h.Key);

    public IReadOnlyList<string> Agents(string url) =>
        _hubs[Normalize(url)]?["agents"] is JsonObject agents ? [.. agents.Select(a => a.Key)] : [];

    public string? Key(string url, string agent) => _hubs[Normalize(url)]?["agents"]?[agent]?["api_key"]?.GetValue<string>();

    public void Set(string url, string agent, string apiKey)
    {
        string u = Normalize(url);
        if (_hubs[u] is not JsonObject hub)
            _hubs[u] = hub = new JsonObject { ["agents"] = new JsonObject() };
        if (hub["agents"] is not JsonObject agents)
            hub["agents"] = agents = [];
        agents[agent] = new JsonObject { ["api_key"] = apiKey };
    }

    public bool Remove(string url, string agent) => _hubs[Normalize(url)]?["agents"] is JsonObject agents && agents.Remove(agent);

    /// <summary>Hub addresses are compared without a trailing slash.</summary>
    public static string Normalize(string url) => url.TrimEnd('/');

    private void Save()
    {
        string tmp = $"{Path}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var stream = new FileStream(tmp, options))
            {
                var json = new JsonObject { ["hubs"] = _hubs.DeepClone() }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
                stream.Write(Encoding.UTF8.GetBytes(json + "\n"));
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, Path, overwrite: true);
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    private static FileStream AcquireLock(string lockPath)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
                if (!OperatingSystem.IsWindows())
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                return new FileStream(lockPath, options);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }
        }
    }

    private static InvalidDataException Corrupt(string path, string why) =>
        new($"hub config file {path} is damaged ({why}); fix it, or move it away and register again (it holds API keys: keep a copy)");
}
