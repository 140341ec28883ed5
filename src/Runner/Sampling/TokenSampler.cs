namespace AutoResearch.Runner.Sampling;

/// <summary>
/// Draws the next token from one row of logits: temperature 0 takes the arg-max (the lowest id among equals); otherwise
/// softmax(logits / temperature) over the top-k logits (all when k is 0), drawn with the caller's seeded <see cref="Random"/>,
/// so a seed gives the same tokens every time.
/// </summary>
public static class TokenSampler
{
    public static int Next(ReadOnlySpan<double> logits, double temperature, int topK, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (logits.IsEmpty)
            throw new ArgumentException("no logits to sample from", nameof(logits));
        if (!(temperature >= 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be a finite number ≥ 0");
        ArgumentOutOfRangeException.ThrowIfNegative(topK);
        if (temperature == 0)
            return ArgMax(logits);

        // Candidates: ids by logit, highest first (ties: lower id first), the first k kept.
        var ids = new int[logits.Length];
        for (int i = 0; i < ids.Length; i++)
            ids[i] = i;
        var values = logits.ToArray();
        Array.Sort(ids, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        int count = topK == 0 ? ids.Length : Math.Min(topK, ids.Length);
        double max = values[ids[0]];
        var weights = new double[count];
        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            weights[i] = Math.Exp((values[ids[i]] - max) / temperature);
            sum += weights[i];
        }
        double u = random.NextDouble() * sum;
        for (int i = 0; i < count; i++)
        {
            u -= weights[i];
            if (u < 0)
                return ids[i];
        }
        return ids[count - 1];
    }

    private static int ArgMax(ReadOnlySpan<double> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
                best = i;
        }
        return best;
    }
}
