namespace AutoResearch.Hub;

/// <summary>
/// POST /api/git/push: rate limit and quota, the bundle to a temporary file, its header checked, its pack indexed and its
/// history checked in a quarantine (several pushes at once), then, one push at a time, the objects moved in, refs and
/// database rows written. A rejected push leaves nothing behind: the temporary file and the quarantine are deleted.
/// </summary>
public sealed class PushReceiver(HubServices hub)
{
    /// <summary>Accepted pushes between two `git gc --auto` runs (each push adds a pack).</summary>
    private const int PushesPerMaintenance = 50;

    // Checking a bundle runs git processes: at most two per core at once, the rest wait without holding a thread.
    private readonly SemaphoreSlim _checking = new(Math.Max(2, 2 * Environment.ProcessorCount));
    private readonly SemaphoreSlim _accepting = new(1, 1);
    private int _acceptedSinceMaintenance;
    private int _maintaining;

    public async Task<IResult> Handle(HttpContext ctx)
    {
        string agent = HubHttp.Agent(ctx);
        var options = hub.Options;
        if (!hub.Store.TryAcquire("push:" + agent, options.PushesPerMinute, 60))
            return HubHttp.Error(429, $"too many pushes from this agent (at most {options.PushesPerMinute} a minute); wait a minute");
        string file = Path.Combine(hub.TempDirectory, Guid.NewGuid().ToString("N") + ".bundle");
        try
        {
            long size;
            try
            {
                await using var fs = File.Create(file);
                size = await HubHttp.CopyLimited(ctx.Request.Body, fs, options.MaxBundleBytes, ctx.RequestAborted);
            }
            catch (Exception e) when (e is InvalidDataException or BadHttpRequestException)
            {
                return HubHttp.Error(413, $"bundle larger than {options.MaxBundleBytes} bytes");
            }
            long used = hub.Store.PushedBytesSince(agent, hub.Time.GetUtcNow().AddDays(-1));
            if (used + size > options.PushQuotaBytesPerDay)
                return HubHttp.Error(429, $"push quota reached: {used} of {options.PushQuotaBytesPerDay} bytes pushed in the last 24 hours, this bundle has {size}");

            BundleHeader? header;
            await using (var fs = File.OpenRead(file))
            {
                if (BundleHeader.TryRead(fs, out header) is { } bad)
                    return HubHttp.Error(400, bad);
            }
            foreach (var prerequisite in header!.Prerequisites)
            {
                if (hub.Store.ResolveCommit(prerequisite) != prerequisite)
                    return HubHttp.Error(400, $"the bundle builds on commit {prerequisite}, which the hub does not have: push it first, or bundle from a base the hub has (see `autoresearch hub leaves`)");
            }

            Quarantine quarantine;
            await _checking.WaitAsync(ctx.RequestAborted);
            try
            {
                quarantine = await hub.Git.ReceiveAsync(file, header, hub.TempDirectory, h => hub.Store.ResolveCommit(h) == h, ctx.RequestAborted);
            }
            catch (BundleRejectedException e)
            {
                return HubHttp.Error(400, e.Message);
            }
            finally
            {
                _checking.Release();
            }

            using (quarantine)
            {
                List<string> added;
                // Not cancelled by the client from here on: objects, refs and rows land together or not at all.
                await _accepting.WaitAsync(CancellationToken.None);
                try
                {
                    // Again, one push at a time: pushes checked side by side must not together pass the quota.
                    used = hub.Store.PushedBytesSince(agent, hub.Time.GetUtcNow().AddDays(-1));
                    if (used + size > options.PushQuotaBytesPerDay)
                        return HubHttp.Error(429, $"push quota reached: {used} of {options.PushQuotaBytesPerDay} bytes pushed in the last 24 hours, this bundle has {size}");
                    var fresh = quarantine.Commits.Where(c => hub.Store.ResolveCommit(c.Hash) != c.Hash).ToList();
                    if (fresh.Count == 0)
                        return Results.Json(new { hashes = Array.Empty<string>() }, statusCode: 201);
                    await quarantine.AcceptAsync(CancellationToken.None);
                    added = hub.Store.AddCommits(fresh, agent);
                    hub.Store.RecordPush(agent, size);
                }
                finally
                {
                    _accepting.Release();
                }
                MaintainSometimes();
                return Results.Json(new { hashes = added }, statusCode: 201);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Every PushesPerMaintenance accepted pushes, one background `git gc --auto` (gc is safe beside pushes: it prunes nothing young).</summary>
    private void MaintainSometimes()
    {
        if (Interlocked.Increment(ref _acceptedSinceMaintenance) < PushesPerMaintenance || Interlocked.Exchange(ref _maintaining, 1) == 1)
            return;
        Interlocked.Exchange(ref _acceptedSinceMaintenance, 0);
        _ = Task.Run(async () =>
        {
            try
            {
                await hub.Git.CollectGarbageIfNeededAsync(CancellationToken.None);
            }
#pragma warning disable CA1031 // Maintenance failing must not stop the hub; it is logged.
            catch (Exception e)
#pragma warning restore CA1031
            {
                hub.Log.LogError(e, "git gc --auto failed: {Cause}", e.Message);
            }
            finally
            {
                Interlocked.Exchange(ref _maintaining, 0);
            }
        });
    }
}
