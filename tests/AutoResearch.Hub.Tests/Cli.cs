using System.Diagnostics;

namespace AutoResearch.Hub.Tests;

/// <summary>Runs the `autoresearch` CLI (built beside the tests) as its own process, with its own hub config file.</summary>
public sealed class Cli : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hubcli-" + Guid.NewGuid().ToString("N"));

    public Cli()
    {
        Directory.CreateDirectory(_dir);
    }

    public string ConfigPath => Path.Combine(_dir, "hub.json");

    public static string RunnerDll => Path.Combine(AppContext.BaseDirectory, "autoresearch.dll");

    /// <summary>A process for `dotnet autoresearch.dll args`, not yet started, with this CLI's config file and no inherited hub settings.</summary>
    public ProcessStartInfo StartInfo(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(RunnerDll);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["AUTORESEARCH_HUB_CONFIG"] = ConfigPath;
        foreach (var name in new[] { "AUTORESEARCH_HUB_URL", "AUTORESEARCH_HUB_KEY", "AUTORESEARCH_HUB_AGENT" })
            psi.Environment.Remove(name);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        return psi;
    }

    public async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        using var p = Process.Start(StartInfo(args))!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await output, await error);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
