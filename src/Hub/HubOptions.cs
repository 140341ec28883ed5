namespace AutoResearch.Hub;

/// <summary>Limits and locations of one hub server; every limit is a knob the tests turn.</summary>
public sealed record HubOptions
{
    /// <summary>Folder holding hub.db (SQLite) and repo.git (the bare repository of every pushed commit).</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Largest accepted git bundle, in bytes.</summary>
    public long MaxBundleBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>Largest accepted post body (UTF-8 bytes of "content").</summary>
    public int MaxPostBytes { get; init; } = 16 * 1024;

    /// <summary>Largest accepted JSON request body, in bytes.</summary>
    public int MaxJsonBytes { get; init; } = 64 * 1024;

    /// <summary>Registrations allowed per client address per minute.</summary>
    public int RegistrationsPerMinute { get; init; } = 10;

    /// <summary>Posts allowed per agent per minute.</summary>
    public int PostsPerMinute { get; init; } = 60;
}
