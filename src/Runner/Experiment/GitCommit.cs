using System.ComponentModel;
using System.Diagnostics;

namespace AutoResearch.Runner.Experiment;

/// <summary>Asks git for the commit being tested.</summary>
public static class GitCommit
{
    /// <summary>`git rev-parse --short=7 HEAD` in <paramref name="workingDirectory"/>; throws with git's message when it fails.</summary>
    public static string ShortHash(string workingDirectory)
    {
        var start = new ProcessStartInfo("git")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in (string[])["rev-parse", "--short=7", "HEAD"])
            start.ArgumentList.Add(argument);
        try
        {
            using var git = Process.Start(start) ?? throw new InvalidOperationException("Could not start git.");
            string output = git.StandardOutput.ReadToEnd();
            string error = git.StandardError.ReadToEnd();
            git.WaitForExit();
            if (git.ExitCode != 0)
                throw new InvalidOperationException(
                    $"'git rev-parse --short=7 HEAD' failed in {workingDirectory} (exit {git.ExitCode}): {error.Trim()}. Run inside the repository, or pass --commit.");
            return output.Trim();
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"Could not run git ({e.Message}): install git or pass --commit.", e);
        }
    }
}
