using System.Diagnostics;
using System.Text;

namespace AutoResearch.Hub;

/// <summary>
/// The hub's bare repository, driven through the `git` executable with argument lists (never a shell).
/// Every commit the hub knows keeps a ref refs/hub/&lt;hash&gt; so that it survives gc and can be bundled alone.
/// </summary>
public sealed class GitRepository
{
    private readonly string _path;

    public GitRepository(string path)
    {
        _path = path;
        if (!Directory.Exists(Path.Combine(path, "objects")))
        {
            Directory.CreateDirectory(path);
            Run(["init", "--bare", "--quiet", path], checkExit: true, inRepo: false);
        }
    }

    /// <summary>A commit read from the repository: full hash, parents, subject line.</summary>
    public sealed record CommitInfo(string Hash, string[] Parents, string Message);

    /// <summary>Verifies a bundle against this repository (prerequisites present, well formed); returns its tip hashes or null.</summary>
    public string[]? VerifyBundle(string bundlePath)
    {
        var verify = Run(["bundle", "verify", "--quiet", bundlePath]);
        if (verify.ExitCode != 0)
            return null;
        var heads = Run(["bundle", "list-heads", bundlePath]);
        if (heads.ExitCode != 0)
            return null;
        var tips = new List<string>();
        foreach (var line in heads.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string hash = line.Split(' ')[0];
            if (hash.Length == 40 && HubValidation.IsHash(hash))
                tips.Add(hash);
        }
        return tips.Count == 0 ? null : [.. tips];
    }

    /// <summary>
    /// Stores the bundle's objects, returns the commits it brought that had no ref yet (oldest first), and pins them with refs;
    /// null (and no ref changed) when the pack is damaged or a tip is not a commit.
    /// </summary>
    public List<CommitInfo>? Unbundle(string bundlePath, string[] tips)
    {
        // verify checks the header and prerequisites; a damaged pack only shows when it is indexed here.
        if (Run(["bundle", "unbundle", bundlePath]).ExitCode != 0)
            return null;
        foreach (var tip in tips)
        {
            var type = Run(["cat-file", "-t", tip]);
            if (type.ExitCode != 0 || type.Output.Trim() != "commit")
                return null;
        }
        // Commits reachable from the new tips but from no existing hub ref: exactly the new ones.
        var args = new List<string> { "log", "--reverse", "--format=%H%x1f%P%x1f%s%x1e" };
        args.AddRange(tips);
        args.Add("--not");
        args.Add("--glob=refs/hub/*");
        var log = Run(args, checkExit: true);
        var commits = new List<CommitInfo>();
        foreach (var record in log.Output.Split('\x1e', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = record.Trim('\n').Split('\x1f');
            if (fields.Length < 3)
                continue;
            commits.Add(new CommitInfo(fields[0], fields[1].Split(' ', StringSplitOptions.RemoveEmptyEntries), fields[2]));
        }
        var refs = new StringBuilder();
        foreach (var c in commits)
            refs.Append("create refs/hub/").Append(c.Hash).Append(' ').Append(c.Hash).Append('\n');
        if (refs.Length > 0)
            Run(["update-ref", "--stdin"], checkExit: true, stdin: refs.ToString());
        return commits;
    }

    /// <summary>Writes a bundle holding a known commit (full hash) and its history to bundlePath.</summary>
    public void CreateBundle(string fullHash, string bundlePath) =>
        Run(["bundle", "create", "--quiet", bundlePath, "refs/hub/" + fullHash], checkExit: true);

    /// <summary>The unified diff between two known commits (full hashes).</summary>
    public string Diff(string fromHash, string toHash) =>
        Run(["diff", "--no-color", "--no-ext-diff", fromHash, toHash, "--"], checkExit: true).Output;

    private (int ExitCode, string Output, string Error) Run(IReadOnlyList<string> args, bool checkExit = false, bool inRepo = true, string? stdin = null)
    {
        var psi = new ProcessStartInfo("git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        if (inRepo)
        {
            psi.ArgumentList.Add("--git-dir");
            psi.ArgumentList.Add(_path);
        }
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        // No user or system configuration, no prompts, no hooks from elsewhere.
        psi.Environment["GIT_CONFIG_NOSYSTEM"] = "1";
        psi.Environment["GIT_CONFIG_GLOBAL"] = "/dev/null";
        psi.Environment["GIT_TERMINAL_PROMPT"] = "0";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start git: is it installed and on PATH?");
        if (stdin is not null)
        {
            p.StandardInput.Write(stdin);
            p.StandardInput.Close();
        }
        var errTask = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        string error = errTask.GetAwaiter().GetResult();
        if (checkExit && p.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed ({p.ExitCode}): {error.Trim()}");
        return (p.ExitCode, output, error);
    }
}
