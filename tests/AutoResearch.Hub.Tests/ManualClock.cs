namespace AutoResearch.Hub.Tests;

/// <summary>A wall clock that stands still until a test moves it, so windows and quotas do not depend on when the test runs.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    /// <summary>Today's date, 20 s into the current minute: far from either edge of a one-minute window.</summary>
    public static ManualClock MidMinute()
    {
        var now = DateTimeOffset.UtcNow;
        return new ManualClock(new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, 20, TimeSpan.Zero));
    }

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
