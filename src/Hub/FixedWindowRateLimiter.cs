namespace AutoResearch.Hub;

/// <summary>Allows at most N events per key in each one-minute window (registration per address, posts per agent).</summary>
public sealed class FixedWindowRateLimiter(int perMinute, TimeProvider time)
{
    private readonly Dictionary<string, (long Window, int Count)> _counts = [];
    private readonly Lock _lock = new();

    public bool TryAcquire(string key)
    {
        long window = time.GetUtcNow().ToUnixTimeSeconds() / 60;
        lock (_lock)
        {
            if (_counts.Count > 10_000)
                _counts.Clear(); // bounded memory: old windows are worthless anyway
            var (w, c) = _counts.TryGetValue(key, out var entry) ? entry : (window, 0);
            if (w != window)
                (w, c) = (window, 0);
            if (c >= perMinute)
                return false;
            _counts[key] = (w, c + 1);
            return true;
        }
    }
}
