using System.Diagnostics;
using System.Text;

namespace AutoResearch.Hub;

/// <summary>
/// The hub's bare repository, driven through the `git` executable with argument lists (never a shell).
/// Every commit the hub knows keeps a ref refs/hub/&lt;hash&gt; so that it survives gc and can be bundled alone.
/// Pushes arrive through a quarantine (see <see cref="Quarantine"/>): nothing reaches objects/ or refs/ before it is checked.
/// </summary>
public sealed class GitRepository
{
    private readonly string _path;

    public GitRepository(string path)
    {
        _path = Path.GetFullPath(path);
        RunAsync(["--version"], CancellationToken.None, checkExit: true, inRepo: false).GetAwaiter().GetResult();
        if (!Directory.Exists(Path.Combine(_path, "objects")))
        {
            Directory.CreateDirectory(_path);
            RunAsync(["init", "--bare", "--quiet", _path], CancellationToken.None, checkExit: true, inRepo: false).GetAwaiter().GetResult();
        }
    }

    /// <summary>A commit read from the repository: full hash, parents, subject line.</summary>
    public sealed record CommitInfo(string Hash, string[] Parents, string Message);

    public string ObjectsDirectory => Path.Combine(_path, "objects");

    /// <summary>
    /// Indexes the bundle's pack strictly into a fresh object directory under quarantineRoot, with the repository's objects as
    /// an alternate, then checks that everything reachable from the tips, down to the prerequisites, is present and that
    /// every tip is a commit (brought by the bundle, or one the hub has: isKnown). Returns the quarantine (its commits oldest first) or throws <see cref="BundleRejectedException"/>;
    /// on rejection the quarantine directory is already gone.
    /// </summary>
    public async Task<Quarantine> ReceiveAsync(string bundlePath, BundleHeader header, string quarantineRoot, Func<string, bool> isKnown, CancellationToken ct)
    {
        string dir = Path.Combine(quarantineRoot, "quarantine-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dir, "pack"));
        try
        {
            var env = new Dictionary<string, string>
            {
                ["GIT_OBJECT_DIRECTORY"] = dir,
                ["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = ObjectsDirectory,
            };
            // --strict: every object well formed and every object it names present (in the pack or the repository).
            using (var pack = File.OpenRead(bundlePath))
            {
                pack.Seek(header.PackOffset, SeekOrigin.Begin);
                var index = await RunAsync(["index-pack", "--strict", "--fix-thin", "--stdin"], ct, env: env, stdin: pack);
                if (index.ExitCode != 0)
                    throw new BundleRejectedException($"the bundle's pack is damaged or incomplete: {LastLine(index.Error)}");
            }
            var range = new List<string>(header.Tips);
            if (header.Prerequisites.Length > 0)
            {
                range.Add("--not");
                range.AddRange(header.Prerequisites);
            }
            // Connectivity: every commit, tree and blob from the tips down to the prerequisites must be there.
            var walk = await RunAsync(["rev-list", "--objects", "--quiet", .. range], ct, env: env);
            if (walk.ExitCode != 0)
                throw new BundleRejectedException($"the bundle's history is not connected to commits the hub has: {LastLine(walk.Error)}");
            var log = await RunAsync(["log", "--reverse", "--format=%H%x1f%P%x1f%s%x1e", .. range], ct, env: env);
            if (log.ExitCode != 0)
                throw new BundleRejectedException($"the bundle's commits could not be read: {LastLine(log.Error)}");
            var commits = new List<CommitInfo>();
            foreach (var record in log.Output.Split('\x1e', StringSplitOptions.RemoveEmptyEntries))
            {
                var fields = record.Trim('\n').Split('\x1f');
                if (fields.Length >= 3)
                    commits.Add(new CommitInfo(fields[0], fields[1].Split(' ', StringSplitOptions.RemoveEmptyEntries), fields[2]));
            }
            // Every tip must be a commit: one the bundle brought (log lists it) or one the hub had (isKnown).
            var listed = commits.Select(c => c.Hash).ToHashSet(StringComparer.Ordinal);
            foreach (var tip in header.Tips)
            {
                if (!listed.Contains(tip) && !isKnown(tip))
                    throw new BundleRejectedException($"bundle ref {tip} is not a commit");
            }
            return new Quarantine(this, dir, commits);
        }
        catch
        {
            DeleteDirectory(dir);
            throw;
        }
    }

    /// <summary>Moves the quarantined objects into the repository (packs before their indexes) and pins the commits with refs.</summary>
    internal async Task AcceptAsync(string quarantineDirectory, IReadOnlyList<CommitInfo> commits, CancellationToken ct)
    {
        string packs = Path.Combine(ObjectsDirectory, "pack");
        Directory.CreateDirectory(packs);
        // A reader sees a pack only through its .idx, so the .idx goes last.
        var files = Directory.GetFiles(Path.Combine(quarantineDirectory, "pack"))
            .Where(f => !Path.GetFileName(f).StartsWith("tmp_", StringComparison.Ordinal))
            .OrderBy(f => f.EndsWith(".idx", StringComparison.Ordinal) ? 1 : 0).ToList();
        foreach (var f in files)
            File.Move(f, Path.Combine(packs, Path.GetFileName(f)), overwrite: true);
        foreach (var sub in Directory.GetDirectories(quarantineDirectory))
        {
            string name = Path.GetFileName(sub);
            if (name.Length != 2)
                continue;
            string target = Path.Combine(ObjectsDirectory, name);
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(sub))
                File.Move(f, Path.Combine(target, Path.GetFileName(f)), overwrite: true);
        }
        var refs = new StringBuilder();
        foreach (var c in commits)
            refs.Append("update refs/hub/").Append(c.Hash).Append(' ').Append(c.Hash).Append('\n');
        if (refs.Length > 0)
            await RunAsync(["update-ref", "--stdin"], ct, checkExit: true, stdinText: refs.ToString());
    }

    /// <summary>Writes a bundle holding a known commit (full hash) and its history to bundlePath.</summary>
    public Task CreateBundleAsync(string fullHash, string bundlePath, CancellationToken ct) =>
        RunAsync(["bundle", "create", "--quiet", bundlePath, "refs/hub/" + fullHash], ct, checkExit: true);

    /// <summary>The unified diff between two known commits (full hashes).</summary>
    public async Task<string> DiffAsync(string fromHash, string toHash, CancellationToken ct) =>
        (await RunAsync(["diff", "--no-color", "--no-ext-diff", fromHash, toHash, "--"], ct, checkExit: true)).Output;

    /// <summary>
    /// Lets git pack loose objects and many small packs when it judges it worth doing (run off the request path). Refs stay
    /// loose: packing them would take locks that a concurrent push's update-ref needs.
    /// </summary>
    public Task CollectGarbageIfNeededAsync(CancellationToken ct) => RunAsync(["-c", "gc.packRefs=false", "gc", "--auto", "--quiet"], ct, checkExit: true);

    /// <summary>Size of every file in the repository, in bytes (tests and the health endpoint).</summary>
    public long SizeBytes() => new DirectoryInfo(_path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    internal static void DeleteDirectory(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // Left for the start-up sweep of the temporary folder.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static readonly string? Nice = File.Exists("/usr/bin/nice") ? "/usr/bin/nice" : null;

    private static string LastLine(string error)
    {
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "git gave no reason" : lines[^1];
    }

    private async Task<(int ExitCode, string Output, string Error)> RunAsync(IReadOnlyList<string> args, CancellationToken ct, bool checkExit = false, bool inRepo = true,
        Dictionary<string, string>? env = null, Stream? stdin = null, string? stdinText = null)
    {
        // git's work (indexing packs, walking history) runs 10 steps nicer than the server, so that the cores go to the
        // request threads first: reads never wait behind pushes. `nice` is relative to the server's own priority.
        var psi = new ProcessStartInfo(Nice ?? "git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null || stdinText is not null,
            UseShellExecute = false,
        };
        if (Nice is not null)
        {
            psi.ArgumentList.Add("-n");
            psi.ArgumentList.Add("10");
            psi.ArgumentList.Add("git");
        }
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
        if (env is not null)
        {
            foreach (var (k, v) in env)
                psi.Environment[k] = v;
        }
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start git: is it installed and on PATH?");
        var errTask = p.StandardError.ReadToEndAsync();
        var outTask = p.StandardOutput.ReadToEndAsync();
        if (psi.RedirectStandardInput)
        {
            try
            {
                if (stdin is not null)
                    await stdin.CopyToAsync(p.StandardInput.BaseStream, ct);
                else
                    await p.StandardInput.WriteAsync(stdinText.AsMemory(), ct);
                p.StandardInput.Close();
            }
            catch (IOException)
            {
                // git stopped reading (it rejected the input): its exit code and stderr say why.
            }
        }
        try
        {
            await p.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw;
        }
        string output = await outTask;
        string error = await errTask;
        if (checkExit && p.ExitCode != 0)
            throw new InvalidOperationException($"git {string.Join(' ', args)} failed ({p.ExitCode}): {error.Trim()}");
        return (p.ExitCode, output, error);
    }
}
