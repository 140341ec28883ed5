using System.Diagnostics;
using System.Net;
using Xunit;

namespace AutoResearch.Hub.Tests;

/// <summary>Findings 6, 8 and 9 (terminal escapes): the `autoresearch hub` CLI as a user runs it, against a real hub.</summary>
public sealed class CliTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_second_register_on_the_same_host_keeps_the_first_agents_key()
    {
        await using var hub = await TestHub.StartAsync();
        using var cli = new Cli();
        string url = hub.BaseAddress.ToString().TrimEnd('/');
        foreach (var id in new[] { "agent-1", "agent-2" })
        {
            var (code, _, err) = await cli.RunAsync("hub", "register", "--url", url, "--id", id);
            Assert.True(code == 0, err);
        }
        // Both agents can still act, each with its own saved key.
        foreach (var id in new[] { "agent-1", "agent-2" })
        {
            var (code, _, err) = await cli.RunAsync("hub", "post", "discussion", $"hello from {id}", "--url", url, "--agent", id);
            Assert.True(code == 0, err);
        }
        // With two agents saved, the CLI asks which one rather than guessing.
        var (ambiguous, _, message) = await cli.RunAsync("hub", "read", "discussion", "--url", url);
        Assert.NotEqual(0, ambiguous);
        Assert.Contains("--agent", message, StringComparison.Ordinal);
        var (_, read, _) = await cli.RunAsync("hub", "read", "discussion", "--url", url, "--agent", "agent-1");
        Assert.Contains("agent-1: hello from agent-1", read, StringComparison.Ordinal);
        Assert.Contains("agent-2: hello from agent-2", read, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cli.ConfigPath));
    }

    [Fact]
    public async Task A_corrupt_config_file_is_named_in_the_error()
    {
        await using var hub = await TestHub.StartAsync();
        using var cli = new Cli();
        await File.WriteAllTextAsync(cli.ConfigPath, "{\"hubs\": {not json", Ct);
        var (code, _, err) = await cli.RunAsync("hub", "leaves", "--url", hub.BaseAddress.ToString());
        Assert.Equal(1, code);
        Assert.Contains(cli.ConfigPath, err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_says_when_there_is_nothing_new_to_push()
    {
        await using var hub = await TestHub.StartAsync();
        using var cli = new Cli();
        using var ws = new GitWorkspace();
        string url = hub.BaseAddress.ToString().TrimEnd('/');
        string a = ws.Commit("f.txt", "1\n", "one");
        Assert.Equal(0, (await cli.RunAsync("hub", "register", "--url", url, "--id", "alice")).ExitCode);
        var first = await cli.RunAsync("hub", "push", "--repo", ws.Path);
        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains(a, first.Output, StringComparison.Ordinal);
        foreach (var args in new[] { new[] { "hub", "push", "--repo", ws.Path }, ["hub", "push", "--repo", ws.Path, "--base", a] })
        {
            var (code, output, err) = await cli.RunAsync(args);
            Assert.True(code == 0, err);
            Assert.Contains("nothing new to push", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Leaves_and_read_print_no_terminal_escape_sequences()
    {
        await using var hub = await TestHub.StartAsync();
        string key = await hub.RegisterAsync("alice");
        using var c = hub.Client(key);
        using var ws = new GitWorkspace();
        ws.Commit("f.txt", "1\n", "evil \u001b]0;pwned\u0007 \u001b[31mred\u001b[0m \u202Eesrever\r");
        using (var r = await c.PostAsync("/api/git/push", new ByteArrayContent(ws.Bundle("main")), Ct))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using var cli = new Cli();
        var (code, output, err) = await cli.RunAsync("hub", "leaves", "--url", hub.BaseAddress.ToString(), "--key", key);
        Assert.True(code == 0, err);
        Assert.Contains("evil", output, StringComparison.Ordinal);
        Assert.DoesNotContain(output, ch => ch is '\u001b' or '\u0007' or '\r' or '\u202E');
    }

    [Fact]
    public async Task Stopping_hub_serve_with_sigterm_stops_the_server()
    {
        if (OperatingSystem.IsWindows())
            Assert.Skip("POSIX signals only");
        using var cli = new Cli();
        string data = Path.Combine(Path.GetTempPath(), "hubserve-" + Guid.NewGuid().ToString("N"));
        var psi = cli.StartInfo("hub", "serve", "--urls", "http://127.0.0.1:0", "--data", data);
        using var serve = Process.Start(psi)!;
        var lines = new List<string>();
        var started = new TaskCompletionSource();
        serve.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            lock (lines)
                lines.Add(e.Data);
            if (e.Data.StartsWith("hub: serving", StringComparison.Ordinal))
                started.TrySetResult();
        };
        serve.BeginOutputReadLine();
        serve.BeginErrorReadLine();
        int server = 0;
        try
        {
            await started.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
            // The server is the CLI's child process.
            string children = await File.ReadAllTextAsync($"/proc/{serve.Id}/task/{serve.Id}/children", Ct);
            server = int.Parse(children.Split(' ', StringSplitOptions.RemoveEmptyEntries).Single(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(Alive(server));
            using (var kill = Process.Start("kill", ["-TERM", serve.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync(Ct);
            await serve.WaitForExitAsync(Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
            for (int i = 0; i < 100 && Alive(server); i++)
                await Task.Delay(100, Ct);
            Assert.False(Alive(server), $"the server (pid {server}) still runs after the CLI got SIGTERM");
        }
        finally
        {
            if (!serve.HasExited)
                serve.Kill(entireProcessTree: true);
            if (server != 0 && Alive(server))
                Process.GetProcessById(server).Kill();
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Running and not a zombie (a zombie has exited; it only waits for its parent to read its status).</summary>
    private static bool Alive(int pid)
    {
        string stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat))
            return false;
        try
        {
            string text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
