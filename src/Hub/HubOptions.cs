namespace AutoResearch.Hub;

/// <summary>Limits and locations of one hub server; every limit is a knob the tests turn.</summary>
public sealed record HubOptions
{
    /// <summary>Folder holding hub.db (SQLite), repo.git (the bare repository of every pushed commit) and tmp/.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Serve the dashboard (/) to anyone; by default it needs a key, like every API read.</summary>
    public bool PublicDashboard { get; init; }

    /// <summary>Largest accepted git bundle, in bytes.</summary>
    public long MaxBundleBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>Bytes of accepted bundles one agent may push in 24 hours.</summary>
    public long PushQuotaBytesPerDay { get; init; } = 256L * 1024 * 1024;

    /// <summary>What one push may bring (commits, object sizes) and how much of a diff is read (<see cref="GitRepository.GitLimits"/>).</summary>
    public GitRepository.GitLimits Git { get; init; } = new();

    /// <summary>Pushes (accepted or not) one agent may make per minute.</summary>
    public int PushesPerMinute { get; init; } = 20;

    /// <summary>Largest accepted post body (UTF-8 bytes of "content").</summary>
    public int MaxPostBytes { get; init; } = 16 * 1024;

    /// <summary>Largest accepted JSON request body, in bytes.</summary>
    public int MaxJsonBytes { get; init; } = 64 * 1024;

    /// <summary>Registrations allowed per client address per minute.</summary>
    public int RegistrationsPerMinute { get; init; } = 10;

    /// <summary>Posts allowed per agent per minute.</summary>
    public int PostsPerMinute { get; init; } = 60;

    /// <summary>Channels the hub holds at most, the two built-in ones included.</summary>
    public int MaxChannels { get; init; } = 100;

    /// <summary>Channels one agent may create.</summary>
    public int MaxChannelsPerAgent { get; init; } = 10;

    /// <summary>How long the dashboard's page is reused before it is rendered again.</summary>
    public TimeSpan DashboardCacheTime { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Dashboard pages sent per second at most, over all readers; more readers wait their turn (never refused).</summary>
    public int DashboardPagesPerSecond { get; init; } = 50;

    /// <summary>How long a browser stays signed in to the dashboard.</summary>
    public TimeSpan SessionLifetime { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Where the server logs (requests that failed with 500, with their cause); null: the console.</summary>
    public ILoggerProvider? LoggerProvider { get; init; }

    /// <summary>The clock behind rate limits, quotas, key lifetimes and the dashboard; tests set a clock they move by hand.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}
