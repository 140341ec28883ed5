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
            return new CachePaths(Path.GetFullPath(fromEnvironment));
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return new CachePaths(Path.Combine(home, ".cache", "autoresearch"));
    }

    /// <summary>An explicit root (a <c>--cache</c> flag) wins over the environment and the default.</summary>
    public static CachePaths From(string? explicitRoot)
        => string.IsNullOrWhiteSpace(explicitRoot) ? Default() : new CachePaths(Path.GetFullPath(explicitRoot));

    /// <summary>Parquet shards: <c>shard_00000.parquet</c> ...</summary>
    public string Data => Path.Combine(Root, "data");

    /// <summary>The trained tokenizer and its token byte lengths.</summary>
    public string Tokenizer => Path.Combine(Root, "tokenizer");

    /// <summary>Pre-tokenized shards (<see cref="Loading.ShardTokenCache"/>), one file per shard and tokenizer.</summary>
    public string Tokens => Path.Combine(Root, "tokens");

    /// <summary>Compiled kernels (cubins), keyed by source, options, architecture and NVRTC version.</summary>
    public string Kernels => Path.Combine(Root, "kernels");
}
