using System.Diagnostics;
using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>The GPU-host scripts (bench/device) as the tests find and run them: under bash, output captured, time bounded.</summary>
internal static class DeviceScripts
{
    /// <summary>The folder holding the scripts: bench/device in the source tree or, in a published folder, the folder above the
    /// test project's (where publish.sh copies them).</summary>
    public static string Folder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "bench", "device"), dir.FullName })
            {
                if (File.Exists(Path.Combine(candidate, "ab-profile.sh")) && File.Exists(Path.Combine(candidate, "sass-waits.sh")))
                    return candidate;
            }
        }
        throw new FileNotFoundException("the device scripts (ab-profile.sh, sass-waits.sh) are in no folder above " + AppContext.BaseDirectory);
    }

    /// <summary>Writes <paramref name="text"/> (line ends made \n) to <paramref name="path"/> as a script its owner may run: the
    /// stand-ins for dotnet and cuobjdump that the scripts call.</summary>
    public static void WriteExecutable(string path, string text)
    {
        File.WriteAllText(path, text.Replace("\r\n", "\n", StringComparison.Ordinal));
        if (!OperatingSystem.IsWindows()) // the scripts run under bash on Linux
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>Runs `bash <paramref name="script"/> <paramref name="args"/>` with <paramref name="environment"/> set (null
    /// values removed) and fails the test when it takes longer than <paramref name="limit"/>.</summary>
    public static (int Exit, string Stdout, string Stderr) Run(string script, IEnumerable<string> args, IReadOnlyDictionary<string, string?> environment,
        TimeSpan limit, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (workingDirectory is not null)
            start.WorkingDirectory = workingDirectory;
        start.ArgumentList.Add(script);
        foreach (var a in args)
            start.ArgumentList.Add(a);
        foreach (var (name, value) in environment)
        {
            if (value is null)
                start.Environment.Remove(name);
            else
                start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(limit), $"{Path.GetFileName(script)} did not finish in {limit.TotalSeconds:F0} s");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
