using System.Diagnostics;

namespace AutoResearch.Hub.Load;

/// <summary>autoresearch-hub as its own process on 127.0.0.1 (a free port), stopped with SIGTERM on dispose.</summary>
public sealed class HubProcess : IAsyncDisposable
{
    private readonly Process _process;

    public Uri Address { get; }

    private HubProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public static async Task<HubProcess> StartAsync(string dataDirectory, params string[] extra)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "autoresearch-hub.dll"), "--urls", "http://127.0.0.1:0", "--data", dataDirectory })
            psi.ArgumentList.Add(a);
        foreach (var a in extra)
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start autoresearch-hub");
        var started = new TaskCompletionSource<Uri>();
        process.OutputDataReceived += (_, e) =>
        {
            // "hub: serving http://127.0.0.1:PORT (pid N) ..."
            if (e.Data is { } line && line.StartsWith("hub: serving ", StringComparison.Ordinal))
                started.TrySetResult(new Uri(line.Split(' ')[2].TrimEnd(',')));
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
                Console.Error.WriteLine("hub: " + line);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var address = await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        return new HubProcess(process, address);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync();
            if (!_process.WaitForExit(TimeSpan.FromSeconds(20)))
                _process.Kill(entireProcessTree: true);
        }
        _process.Dispose();
    }
}
