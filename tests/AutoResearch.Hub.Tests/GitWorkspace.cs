using System.Diagnostics;

namespace AutoResearch.Hub.Tests;

/// <summary>A temporary git repository the tests commit to and bundle from (git run with argument lists).</summary>
public sealed class GitWorkspace : IDisposable
{
    public string Path { get; }

    public GitWorkspace()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "hubgit-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        Git("init", "--quiet", "-b", "main");
    }

    /// <summary>Writes a file, commits it, returns the new commit's full hash.</summary>
    public string Commit(string file, string content, string message)
    {
        File.WriteAllText(System.IO.Path.Combine(Path, file), content);
        Git("add", file);
        Git("-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "-m", message);
        return Git("rev-parse", "HEAD").Trim();
    }

    /// <summary>Writes a binary file, commits it, returns the new commit's full hash.</summary>
    public string CommitBytes(string file, byte[] content, string message)
    {
        File.WriteAllBytes(System.IO.Path.Combine(Path, file), content);
        Git("add", file);
        Git("-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "--quiet", "-m", message);
        return Git("rev-parse", "HEAD").Trim();
    }

    /// <summary>A pack of exactly the given objects (no others they name), as `git pack-objects --stdout` writes it.</summary>
    public byte[] PackObjects(params string[] objects)
    {
        var psi = new ProcessStartInfo("git") { WorkingDirectory = Path, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "pack-objects", "--stdout", "-q" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(string.Join('\n', objects) + "\n");
        p.StandardInput.Close();
        using var buffer = new MemoryStream();
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.BaseStream.CopyTo(buffer);
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"git pack-objects failed: {err.Result}");
        return buffer.ToArray();
    }

    /// <summary>Bundles the given revisions (e.g. "main" or "a..main") and returns the bytes.</summary>
    public byte[] Bundle(params string[] revs)
    {
        string file = System.IO.Path.Combine(Path, "..", System.IO.Path.GetFileName(Path) + "-" + Guid.NewGuid().ToString("N") + ".bundle");
        var args = new List<string> { "bundle", "create", "--quiet", file };
        args.AddRange(revs);
        Git([.. args]);
        byte[] bytes = File.ReadAllBytes(file);
        File.Delete(file);
        return bytes;
    }

    public string Git(params string[] args) => Run(Path, args);

    public static string Run(string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo("git") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed: {err.Result}");
        return output;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
