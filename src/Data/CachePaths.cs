namespace AutoResearch.Data;

/// <summary>
/// Where prepared data and the tokenizer live (SPEC §1): <c>~/.cache/autoresearch/</c> by default,
/// overridden by the <c>AUTORESEARCH_CACHE</c> environment variable or a command's <c>--cache</c> flag.
/// </summary>
public sealed record CachePaths(string Root)
{
    /// <summary>Environment variable that moves the whole cache.</summary>
    public const string Variable = "AUTORESEARCH_CACHE";

    /// <summary>The cache root from the environment, else <c>~/.cache/autoresearch</c>.</summary>
    public static CachePaths Default()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
            return Checked(fromEnvironment, $"${Variable}");
        return new CachePaths(Path.Combine(Home, ".cache", "autoresearch"));
    }

    /// <summary>An explicit root (a <c>--cache</c> flag) wins over the environment and the default.</summary>
    public static CachePaths From(string? explicitRoot)
        => string.IsNullOrWhiteSpace(explicitRoot) ? Default() : Checked(explicitRoot, "--cache");

    /// <summary>
    /// A leading <c>~</c> or <c>~/</c> is the home folder, as a shell would expand it (a quoted value or <c>--cache=~/x</c> reaches
    /// us unexpanded); <c>~user</c> and a <c>~</c> anywhere else are left as they are.
    /// </summary>
    public static string ExpandHome(string path, string home)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path == "~")
            return home;
        return path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(home, path[2..]) : path;
    }

    private static string Home => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    /// <summary>The root, with the home folder expanded and made absolute; an existing path that is not a folder is refused.</summary>
    private static CachePaths Checked(string root, string source)
    {
        var full = Path.GetFullPath(ExpandHome(root.Trim(), Home));
        if (Path.Exists(full) && !Directory.Exists(full))
            throw new IOException($"{source} '{root}' is not a folder: the cache is a folder holding data/, tokenizer/ and tokens/ (it is created if missing)");
        return new CachePaths(full);
    }

    /// <summary>Parquet shards: <c>shard_00000.parquet</c> ...</summary>
    public string Data => Path.Combine(Root, "data");

    /// <summary>The trained tokenizer and its token byte lengths.</summary>
    public string Tokenizer => Path.Combine(Root, "tokenizer");

    /// <summary>Pre-tokenized shards (<see cref="Loading.ShardTokenCache"/>), one file per shard and tokenizer.</summary>
    public string Tokens => Path.Combine(Root, "tokens");

    /// <summary>Compiled kernels (cubins), keyed by source, options, architecture and NVRTC version.</summary>
    public string Kernels => Path.Combine(Root, "kernels");
}
