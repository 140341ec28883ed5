namespace AutoResearch.Data.Evaluation;

/// <summary>
/// Validation bits per byte (SPEC §8): Σ per-token cross-entropy in nats over scored tokens ÷ (ln 2 × Σ UTF-8 bytes of the
/// target tokens), where targets whose token has 0 bytes (the special tokens) are left out of both sums, and so are ignored
/// targets (−1).
/// </summary>
public sealed class BpbAccumulator
{
    private double _nats;
    private long _bytes;

    /// <summary>Per-token byte lengths by token id (0 for special tokens).</summary>
    public BpbAccumulator(int[] tokenBytes) => TokenBytes = tokenBytes;

    public int[] TokenBytes { get; }

    public double Nats => _nats;

    public long Bytes => _bytes;

    /// <summary>Adds one batch: per-position losses (nats) and the targets they were computed against.</summary>
    public void Add(ReadOnlySpan<float> losses, ReadOnlySpan<int> targets)
    {
        if (losses.Length != targets.Length)
            throw new ArgumentException($"{losses.Length} losses for {targets.Length} targets");
        for (int i = 0; i < targets.Length; i++)
        {
            int target = targets[i];
            if (target < 0)
                continue;
            if (target >= TokenBytes.Length)
                throw new ArgumentOutOfRangeException(nameof(targets), target, $"target {target} is outside the vocabulary of {TokenBytes.Length}");
            int bytes = TokenBytes[target];
            if (bytes == 0)
                continue;
            _nats += losses[i];
            _bytes += bytes;
        }
    }

    /// <summary>The metric so far; throws when nothing was scored.</summary>
    public double BitsPerByte => _bytes > 0 ? _nats / (Math.Log(2) * _bytes)
        : throw new InvalidOperationException("no scored bytes: every target was ignored or a special token");
}
