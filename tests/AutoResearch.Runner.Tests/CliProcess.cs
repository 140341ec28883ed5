using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>
/// The built CLI as a child process whose output is read as it comes, for tests that send it signals. It is started through
/// env(1) with SIGINT reset to its default, which a background parent may have set to ignored (and the child would inherit).
/// A test that fails leaves no process behind: dispose kills it.
/// </summary>
public sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Task _readers;

    private CliProcess(Process process)
    {
        _process = process;
        _readers = Task.WhenAll(Pump(process.StandardOutput, _stdout), Pump(process.StandardError, _stderr));
    }

    /// <summary>Starts `autoresearch args`; skips the test where env(1) cannot reset SIGINT.</summary>
    public static CliProcess Start(params string[] args)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists("/usr/bin/env"), "needs Linux and env(1) to reset SIGINT for the child");
        var start = new ProcessStartInfo("/usr/bin/env") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in (string[])["--default-signal=INT", Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
            Path.Combine(AppContext.BaseDirectory, "autoresearch.dll"), .. args])
            start.ArgumentList.Add(a);
        return new CliProcess(Process.Start(start)!);
    }

    public int Id => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_stdout)
                return _stdout.ToString();
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Waits until stdout holds <paramref name="text"/>; fails the test when the process ends or the time is up first.</summary>
    public void WaitForOutput(string text, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (!Stdout.Contains(text, StringComparison.Ordinal))
        {
            Assert.SkipWhen(_process.HasExited && _process.ExitCode == 125, "this env(1) has no --default-signal");
            if (_process.HasExited)
                Assert.Fail($"exited ({_process.ExitCode}) before printing '{text}': {Stderr}\n{Stdout}");
            if (deadline.Elapsed > timeout)
                Assert.Fail($"no '{text}' within {timeout.TotalSeconds} s: {Stdout}");
            Thread.Sleep(20);
        }
    }

    /// <summary>Sends a signal by name (INT, TERM) with kill(1).</summary>
    public void Signal(string name)
    {
        using var kill = Process.Start("kill", ["-" + name, _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Waits for the process and its output to end; false when it is still running after <paramref name="timeout"/>.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            return false;
        _readers.Wait(TimeSpan.FromSeconds(10));
        return true;
    }

    private static async Task Pump(StreamReader reader, StringBuilder into)
    {
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            lock (into)
                into.Append(buffer, 0, read);
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
