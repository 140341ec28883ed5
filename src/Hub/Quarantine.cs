namespace AutoResearch.Hub;

/// <summary>
/// The checked objects of one push, held in their own object directory until <see cref="AcceptAsync"/> moves them into the
/// repository; disposing without accepting deletes them, so a rejected push leaves zero bytes behind.
/// </summary>
public sealed class Quarantine(GitRepository repository, string directory, List<GitRepository.CommitInfo> commits) : IDisposable
{
    /// <summary>The commits reachable from the bundle's tips down to its prerequisites, oldest first.</summary>
    public IReadOnlyList<GitRepository.CommitInfo> Commits => commits;

    public Task AcceptAsync(CancellationToken ct) => repository.AcceptAsync(directory, commits, ct);

    public void Dispose() => GitRepository.DeleteDirectory(directory);
}
