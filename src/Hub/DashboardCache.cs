namespace AutoResearch.Hub;

/// <summary>
/// The dashboard's page, rendered at most once per maxAge however many browsers ask: while one request renders a fresh
/// copy, the others get the previous one, so a crowd of readers costs one render per period, not one each.
/// </summary>
public sealed class DashboardCache(TimeSpan maxAge, TimeProvider time)
{
    private readonly SemaphoreSlim _rendering = new(1, 1);
    private volatile Entry? _entry;

    private sealed record Entry(string Html, long RenderedAt);

    public async Task<string> GetAsync(Func<string> render, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(render);
        var entry = _entry;
        if (entry is not null && time.GetElapsedTime(entry.RenderedAt) < maxAge)
            return entry.Html;
        if (entry is not null)
        {
            // Stale: whoever gets the lock renders; everyone else answers with the stale copy at once.
            if (!_rendering.Wait(0))
                return entry.Html;
        }
        else
        {
            await _rendering.WaitAsync(ct);
        }
        try
        {
            entry = _entry;
            if (entry is null || time.GetElapsedTime(entry.RenderedAt) >= maxAge)
            {
                long started = time.GetTimestamp();
                entry = new Entry(render(), started);
                _entry = entry;
            }
            return entry.Html;
        }
        finally
        {
            _rendering.Release();
        }
    }
}
