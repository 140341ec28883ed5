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

    public GitRepository(string path, GitLimits? limits = null)
    {
        _path = Path.GetFullPath(path);
        Limits = limits ?? new GitLimits();
        _diffs = new SemaphoreSlim(Limits.ConcurrentDiffs);
        RunAsync(["--version"], CancellationToken.None, checkExit: true, inRepo: false).GetAwaiter().GetResult();
        if (!Directory.Exists(Path.Combine(_path, "objects")))
        {
            Directory.CreateDirectory(_path);
            RunAsync(["init", "--bare", "--quiet", _path], CancellationToken.None, checkExit: true, inRepo: false).GetAwaiter().GetResult();
        }
    }

    /// <summary>A commit read from the repository: full hash, parents, subject line.</summary>
    public sealed record CommitInfo(string Hash, string[] Parents, string Message);

    /// <summary>
    /// What one push may bring (checked before anything is accepted): commits, the size of each object as git stores it
    /// uncompressed, the uncompressed bytes of all of them; and how much of a diff is read.
    /// </summary>
    public sealed record GitLimits
    {
        /// <summary>Commits one push may add.</summary>
        public int MaxCommitsPerPush { get; init; } = 1000;

        /// <summary>Largest commit object (headers and message), in bytes.</summary>
        public int MaxCommitBytes { get; init; } = 16 * 1024;

        /// <summary>Largest file (blob) a pushed commit may hold, in bytes.</summary>
        public long MaxBlobBytes { get; init; } = 8L * 1024 * 1024;

        /// <summary>Uncompressed bytes of all the objects one push brings (a bundle compresses repeated text a thousandfold).</summary>
        public long MaxPushObjectBytes { get; init; } = 64L * 1024 * 1024;

        /// <summary>Objects (commits, trees, files) one push may add.</summary>
        public int MaxObjectsPerPush { get; init; } = 100_000;

        /// <summary>Characters of a commit's subject the hub keeps (longer ones are cut, with an ellipsis).</summary>
        public int MaxSubjectChars { get; init; } = 200;

        /// <summary>Bytes of a diff the hub reads from git; a longer diff is cut there, with a note.</summary>
        public int MaxDiffBytes { get; init; } = 4 * 1024 * 1024;

        /// <summary>Diffs git computes at once; more wait their turn.</summary>
        public int ConcurrentDiffs { get; init; } = 2;

        /// <summary>How long git may take over one diff; a slower one is stopped and not shown.</summary>
        public TimeSpan DiffTimeout { get; init; } = TimeSpan.FromSeconds(10);
    }

    public GitLimits Limits { get; }

    private readonly SemaphoreSlim _diffs;

    /// <summary>A full object name as git prints it: 40 lowercase hex digits (SHA-1) or 64 (SHA-256).</summary>
    internal static bool IsObjectName(string s)
        => (s.Length == 40 || s.Length == 64) && s.All(char.IsAsciiHexDigitLower);

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
            var commits = await ReadCommitsAsync(dir, range, env, ct);
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

    /// <summary>
    /// The commits of a push, oldest first, read without trusting anything a commit's author wrote, and with every read bounded
    /// before anything large is read:
    /// 1. every object the pack brings (`cat-file --batch-all-objects` over the quarantine alone, so objects no commit points
    ///    to count too): how many, each one's type and size, their total, checked against <see cref="Limits"/>; a commit is at
    ///    most MaxCommitBytes, which also bounds how many parents it can name;
    /// 2. hashes and parents from `rev-list --parents` (each checked to be an object name, so no message text can pose as a
    ///    commit or reach a git command line as an option);
    /// 3. each subject from the commit object itself, read by its length (`cat-file --batch`), cut to MaxSubjectChars.
    /// </summary>
    private async Task<List<CommitInfo>> ReadCommitsAsync(string quarantine, List<string> range, Dictionary<string, string> env, CancellationToken ct)
    {
        // 1. The pack's own objects: the quarantine as the object directory and no alternates.
        var own = new Dictionary<string, string> { ["GIT_OBJECT_DIRECTORY"] = quarantine };
        var (sizes, tooMany) = await RunCappedAsync(["cat-file", "--batch-all-objects", "--unordered", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
            Limits.MaxObjectsPerPush * 96, ct, own, rejectAs: "the bundle's objects could not be listed");
        var objectLines = sizes.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (tooMany || objectLines.Length > Limits.MaxObjectsPerPush)
            throw new BundleRejectedException($"the bundle brings more than {Limits.MaxObjectsPerPush} objects (commits, trees and files); push in parts");
        long total = 0;
        foreach (var line in objectLines)
        {
            var parts = line.Split(' ');
            if (parts.Length != 3 || !long.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long size))
                throw new BundleRejectedException($"the bundle's objects could not be read: '{line}'");
            total += size;
            if (parts[1] == "blob" && size > Limits.MaxBlobBytes)
                throw new BundleRejectedException($"the bundle holds a file of {size} bytes; files may have at most {Limits.MaxBlobBytes}");
            if (parts[1] == "commit" && size > Limits.MaxCommitBytes)
                throw new BundleRejectedException($"the bundle holds a commit of {size} bytes (its message and parents); commits may have at most {Limits.MaxCommitBytes}");
        }
        if (total > Limits.MaxPushObjectBytes)
            throw new BundleRejectedException($"the bundle's objects take {total} bytes uncompressed; a push may bring at most {Limits.MaxPushObjectBytes}");

        // 2. The commits and their parents: bounded by the commit limits just checked, and read only up to that bound.
        var (listed, cut) = await RunCappedAsync(["rev-list", "--reverse", "--parents", .. range], Limits.MaxCommitsPerPush * Limits.MaxCommitBytes, ct, env,
            rejectAs: "the bundle's commits could not be read");
        var lines = listed.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (cut || lines.Length > Limits.MaxCommitsPerPush)
            throw new BundleRejectedException($"the bundle brings {(cut ? "more than " + Limits.MaxCommitsPerPush : lines.Length)} commits; a push may bring at most {Limits.MaxCommitsPerPush} (push in parts)");
        var graph = new List<string[]>(lines.Length);
        foreach (var line in lines)
        {
            var names = line.Split(' ');
            if (!names.All(IsObjectName))
                throw new BundleRejectedException("the bundle's commits could not be read: git listed something that is not an object name");
            graph.Add(names);
        }

        // 3. The commit objects themselves, each read by the length git gives it (each within the commit limit, with its header line).
        var (raw, _) = await RunCappedBytesAsync(["cat-file", "--batch"], graph.Count * (Limits.MaxCommitBytes + 128), ct, env,
            "the bundle's commits could not be read", string.Join('\n', graph.Select(g => g[0])) + "\n");
        var commits = new List<CommitInfo>(graph.Count);
        int at = 0;
        foreach (var names in graph)
        {
            int headerEnd = Array.IndexOf(raw, (byte)'\n', at);
            var header = headerEnd < 0 ? [] : Encoding.ASCII.GetString(raw, at, headerEnd - at).Split(' ');
            if (header.Length != 3 || header[0] != names[0] || header[1] != "commit" || !int.TryParse(header[2], out int length)
                || headerEnd + 1 + length > raw.Length)
                throw new BundleRejectedException($"the bundle's commit {names[0]} could not be read");
            commits.Add(new CommitInfo(names[0], names[1..], Subject(raw.AsSpan(headerEnd + 1, length), Limits.MaxSubjectChars)));
            at = headerEnd + 1 + length + 1; // the object, then a newline
        }
        return commits;
    }

    /// <summary>
    /// A commit object's subject as git's %s gives it: the message's first paragraph (after the headers' blank line and any
    /// blank lines that open the message), its lines joined by spaces; control, format (bidirectional overrides, zero-width)
    /// and line or paragraph separator characters made spaces; cut to maxChars with an ellipsis.
    /// </summary>
    internal static string Subject(ReadOnlySpan<byte> commitObject, int maxChars)
    {
        int blank = commitObject.IndexOf("\n\n"u8);
        if (blank < 0)
            return "";
        var message = commitObject[(blank + 2)..];
        while (message.Length > 0 && (message[0] == (byte)'\n' || message[0] == (byte)'\r'))
            message = message[1..];
        int paragraphEnd = message.IndexOf("\n\n"u8);
        var paragraph = paragraphEnd < 0 ? message : message[..paragraphEnd];
        // Decoding is bounded by the commit limit; cut first so a long paragraph costs no more than its first characters.
        string text = Encoding.UTF8.GetString(paragraph.Length > 4 * maxChars ? paragraph[..(4 * maxChars)] : paragraph);
        var cleaned = new StringBuilder(Math.Min(text.Length, maxChars + 1));
        foreach (var rune in text.EnumerateRunes())
        {
            if (cleaned.Length >= maxChars)
            {
                cleaned.Append('…');
                break;
            }
            var category = Rune.GetUnicodeCategory(rune);
            bool invisible = Rune.IsControl(rune) || category is System.Globalization.UnicodeCategory.Format
                or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator;
            cleaned.Append(invisible ? " " : rune.ToString());
        }
        return cleaned.ToString().Trim();
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

    /// <summary>
    /// The unified diff between two known commits (full hashes), at most <see cref="GitLimits.MaxDiffBytes"/> of it (git is
    /// stopped there and a last line says so), at most <see cref="GitLimits.ConcurrentDiffs"/> computed at once, each within
    /// <see cref="GitLimits.DiffTimeout"/> (past it, a line says the diff is not shown).
    /// </summary>
    public async Task<string> DiffAsync(string fromHash, string toHash, CancellationToken ct)
    {
        if (!IsObjectName(fromHash) || !IsObjectName(toHash))
            throw new ArgumentException($"a diff takes two full commit hashes; got '{fromHash}' and '{toHash}'");
        await _diffs.WaitAsync(ct);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(Limits.DiffTimeout);
            // --end-of-options: nothing after it is read as an option, whatever it holds.
            var (text, cut) = await RunCappedAsync(["diff", "--no-color", "--no-ext-diff", "--end-of-options", fromHash, toHash, "--"], Limits.MaxDiffBytes,
                deadline.Token);
            return cut ? text + $"\n... (the diff is longer than {Limits.MaxDiffBytes} bytes: cut here)\n" : text;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return $"(the diff took git longer than {Limits.DiffTimeout.TotalSeconds:F0} s: not shown)\n";
        }
        finally
        {
            _diffs.Release();
        }
    }

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

    /// <summary>
    /// git's standard output (UTF-8), at most maxBytes of it: past that, git is stopped and cut is true (a cut may split a
    /// character: the decoder makes it a replacement character). See <see cref="RunCappedBytesAsync"/>.
    /// </summary>
    private async Task<(string Text, bool Cut)> RunCappedAsync(IReadOnlyList<string> args, int maxBytes, CancellationToken ct,
        Dictionary<string, string>? env = null, string? rejectAs = null)
    {
        var (bytes, cut) = await RunCappedBytesAsync(args, maxBytes, ct, env, rejectAs);
        return (Encoding.UTF8.GetString(bytes), cut);
    }

    /// <summary>
    /// git's standard output, at most maxBytes of it (past that, git is stopped and cut is true), with stdinText written to its
    /// input while it is read. A failure of git (when not cut) throws: a <see cref="BundleRejectedException"/> starting with
    /// rejectAs when given, else an InvalidOperationException. Cancelled or failed, git is stopped before this returns.
    /// </summary>
    private async Task<(byte[] Bytes, bool Cut)> RunCappedBytesAsync(IReadOnlyList<string> args, int maxBytes, CancellationToken ct,
        Dictionary<string, string>? env = null, string? rejectAs = null, string? stdinText = null)
    {
        using var p = Start(args, env, redirectInput: stdinText is not null);
        try
        {
            var errTask = p.StandardError.ReadToEndAsync(ct);
            // Written beside the reading: git answers as it reads, and neither side may wait on a full pipe.
            var inTask = stdinText is null ? Task.CompletedTask : WriteAndCloseAsync(p.StandardInput, stdinText, ct);
            // Grown as the output comes (most outputs are far below the cap), read up to one byte past the cap.
            using var output = new MemoryStream();
            var chunk = new byte[64 * 1024];
            int read;
            while (output.Length <= maxBytes && (read = await p.StandardOutput.BaseStream.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, maxBytes + 1 - output.Length)), ct)) > 0)
                output.Write(chunk, 0, read);
            if (output.Length > maxBytes)
            {
                // Cut: git is stopped (its pipes closed, so the reads and writes still pending end in exceptions nobody needs).
                Stop(p);
                foreach (var pending in new[] { errTask, inTask })
                    _ = pending.ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                await p.WaitForExitAsync(ct);
                return (output.GetBuffer().AsSpan(0, maxBytes).ToArray(), true);
            }
            await inTask;
            await p.WaitForExitAsync(ct);
            string error = await errTask;
            if (p.ExitCode != 0)
            {
                if (rejectAs is not null)
                    throw new BundleRejectedException($"{rejectAs}: {LastLine(error)}");
                throw new InvalidOperationException($"git {string.Join(' ', args)} failed ({p.ExitCode}): {error.Trim()}");
            }
            return (output.ToArray(), false);
        }
        catch
        {
            Stop(p);
            throw;
        }
    }

    private static async Task WriteAndCloseAsync(StreamWriter input, string text, CancellationToken ct)
    {
        await input.WriteAsync(text.AsMemory(), ct);
        input.Close();
    }

    /// <summary>Kills git and its children if still running, and closes its pipes, so that a process whose reader has gone
    /// does not sit blocked on a full pipe (holding its memory) until a collection closes the handles.</summary>
    private static void Stop(Process p)
    {
        try
        {
            if (!p.HasExited)
                p.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited between the check and the kill.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Could not be signalled: it is exiting.
        }
        foreach (var stream in new Stream?[] { p.StartInfo.RedirectStandardInput ? p.StandardInput.BaseStream : null, p.StandardOutput.BaseStream, p.StandardError.BaseStream })
        {
            try
            {
                stream?.Dispose();
            }
            catch (IOException)
            {
            }
        }
    }

    private Process Start(IReadOnlyList<string> args, Dictionary<string, string>? env, bool redirectInput, bool inRepo = true)
    {
        // git's work (indexing packs, walking history) runs 10 steps nicer than the server, so that the cores go to the
        // request threads first: reads never wait behind pushes. `nice` is relative to the server's own priority.
        var psi = new ProcessStartInfo(Nice ?? "git")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
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
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start git: is it installed and on PATH?");
    }

    private async Task<(int ExitCode, string Output, string Error)> RunAsync(IReadOnlyList<string> args, CancellationToken ct, bool checkExit = false, bool inRepo = true,
        Dictionary<string, string>? env = null, Stream? stdin = null, string? stdinText = null)
    {
        bool redirectInput = stdin is not null || stdinText is not null;
        using var p = Start(args, env, redirectInput, inRepo);
        try
        {
            var errTask = p.StandardError.ReadToEndAsync(ct);
            var outTask = p.StandardOutput.ReadToEndAsync(ct);
            if (redirectInput)
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
            await p.WaitForExitAsync(ct);
            string output = await outTask;
            string error = await errTask;
            if (checkExit && p.ExitCode != 0)
                throw new InvalidOperationException($"git {string.Join(' ', args)} failed ({p.ExitCode}): {error.Trim()}");
            return (p.ExitCode, output, error);
        }
        catch
        {
            // Cancelled (the client went away) or failed: git must not run on behind the request.
            Stop(p);
            throw;
        }
    }
}
