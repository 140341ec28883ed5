namespace AutoResearch.Hub;

/// <summary>What the endpoints share: the options, the store, the repository, the temporary folder, the log, the clock.</summary>
public sealed class HubServices(HubOptions options, HubStore store, GitRepository git, string tempDirectory, ILogger log, TimeProvider time)
{
    public HubOptions Options { get; } = options;
    public HubStore Store { get; } = store;
    public GitRepository Git { get; } = git;
    public string TempDirectory { get; } = tempDirectory;
    public ILogger Log { get; } = log;
    public TimeProvider Time { get; } = time;
    public DashboardCache Dashboard { get; } = new(options.DashboardCacheTime, time);
}
