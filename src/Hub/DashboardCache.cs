namespace AutoResearch.Hub;

/// <summary>
/// The dashboard's page, rendered at most once per maxAge however many browsers ask: while one request renders a fresh
/// copy, the others get the previous one, so a crowd of readers costs one render per period, not one each.
/// </summary>
public sealed class DashboardCache(TimeSpan maxAge, TimeProvider time)
{
    private readonly SemaphoreSlim _rendering = new(1, 1);
    private volatile Entry? _entry;

    /// <summary>A rendered page: UTF-8 bytes, and the same gzip-compressed once for the browsers that accept it.</summary>
    public sealed record Page(byte[] Html, byte[] Gzip);

    private sealed record Entry(Page Page, long RenderedAt);

    /// <summary>The page, encoded and compressed once per render, not once per request.</summary>
    public async Task<Page> GetAsync(Func<string> render, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(render);
        var entry = _entry;
        if (entry is not null && time.GetElapsedTime(entry.RenderedAt) < maxAge)
            return entry.Page;
        if (entry is not null)
        {
            // Stale: whoever gets the lock renders; everyone else answers with the stale copy at once.
            if (!_rendering.Wait(0))
                return entry.Page;
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
                byte[] html = System.Text.Encoding.UTF8.GetBytes(render());
                using var gzip = new MemoryStream();
                using (var z = new System.IO.Compression.GZipStream(gzip, System.IO.Compression.CompressionLevel.Optimal))
                    z.Write(html);
                entry = new Entry(new Page(html, gzip.ToArray()), started);
                _entry = entry;
            }
            return entry.Page;
        }
        finally
        {
            _rendering.Release();
        }
    }
}
