using System.Diagnostics;
using AutoResearch.Runner.Experiment;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class GitCommitTests
{
    private static string Git(string folder, params string[] args)
    {
        var start = new ProcessStartInfo("git") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            start.ArgumentList.Add(a);
        using var git = Process.Start(start)!;
        string output = git.StandardOutput.ReadToEnd();
        git.StandardError.ReadToEnd();
        git.WaitForExit();
        Assert.True(git.ExitCode == 0, $"git {string.Join(' ', args)} failed");
        return output.Trim();
    }

    [Fact]
    public void Short_hash_is_the_seven_character_head_commit()
    {
        using var folder = new TempFolder();
        try
        {
            Git(folder.Path, "init", "-q");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Skip("git is not installed");
        }
        File.WriteAllText(folder.File("a.txt"), "a");
        Git(folder.Path, "add", "a.txt");
        Git(folder.Path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one");
        string full = Git(folder.Path, "rev-parse", "HEAD");

        string hash = GitCommit.ShortHash(folder.Path);

        Assert.Equal(7, hash.Length);
        Assert.StartsWith(hash, full, StringComparison.Ordinal);
    }

    [Fact]
    public void Short_hash_outside_a_repository_says_to_pass_commit()
    {
        using var folder = new TempFolder();
        var e = Assert.Throws<InvalidOperationException>(() => GitCommit.ShortHash(folder.Path));
        Assert.Contains("--commit", e.Message, StringComparison.Ordinal);
    }
}
