namespace AutoResearch.Runner.Sweep;

/// <summary>
/// One configuration of the shape sweep: a name, the knobs it sets (as <c>--set</c> would), and the rows per micro-batch its
/// timing and short train use (wide or deep models take fewer so they fit).
/// </summary>
public sealed record SweepConfig(string Name, IReadOnlyList<string> Sets, int DeviceBatch)
{
    /// <summary>
    /// The built-in sweep: the baseline, then each knob moved on its own or with others (head size, width, grouped-query
    /// attention, activation, MLP ratio, depth 2–32, window patterns, soft cap, rotary base, value embeddings).
    /// </summary>
    public static IReadOnlyList<SweepConfig> Defaults { get; } =
    [
        new("baseline", [], 128),
        new("head64", ["HeadDim=64"], 128),
        new("gqa-4q-2kv", ["KvHeads=2"], 128),
        new("head64-gqa-8q-2kv", ["HeadDim=64", "KvHeads=2"], 128),
        new("width1024", ["AspectRatio=128"], 128),
        new("width2048-gqa-16q-4kv", ["AspectRatio=256", "KvHeads=4"], 64),
        new("width2048-head64", ["AspectRatio=256", "HeadDim=64"], 64),
        new("gelu", ["Activation=gelu"], 128),
        new("swiglu", ["Activation=swiglu"], 128),
        new("mlp-ratio-2", ["MlpRatio=2"], 128),
        new("depth2-width512", ["Depth=2", "AspectRatio=256"], 128),
        new("depth32-width512", ["Depth=32", "AspectRatio=16"], 64),
        new("all-long", ["WindowPattern=L"], 128),
        new("all-short-256", ["WindowPattern=S", "ShortWindow=256"], 128),
        new("no-cap-rope500k-ve-all", ["SoftCap=0", "RotaryBase=500000", "ValueEmbeds=all"], 128),
    ];

    /// <summary>Parses "name: Knob=Value Knob=Value ... [@rows]" (one configuration a line of a --configs file).</summary>
    public static SweepConfig Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        int colon = line.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
            throw new FormatException($"sweep configuration '{line}': expected 'name: Knob=Value ... [@rows]'");
        string name = line[..colon].Trim();
        int? rows = null;
        var sets = new List<string>();
        foreach (var word in line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // The rows per micro-batch are @rows; DeviceBatchSize=N says the same. A --set of it would be overwritten by the rows
            // (and TotalBatchSize by one micro-batch a step), so the sweep would run another batch than the line asks for.
            int eq = word.IndexOf('=', StringComparison.Ordinal);
            string knob = eq > 0 ? word[..eq] : "";
            if (knob.Equals(nameof(Hyperparameters.TotalBatchSize), StringComparison.OrdinalIgnoreCase))
            {
                throw new FormatException($"sweep configuration '{name}': '{word}' cannot be swept: each short train takes one micro-batch a step "
                    + "(TotalBatchSize = rows × T); set the rows with @rows");
            }
            bool isDeviceBatch = knob.Equals(nameof(Hyperparameters.DeviceBatchSize), StringComparison.OrdinalIgnoreCase);
            if (word.StartsWith('@') || isDeviceBatch)
            {
                string text = isDeviceBatch ? word[(eq + 1)..] : word[1..];
                if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int given) || given < 1)
                    throw new FormatException($"sweep configuration '{name}': '{word}' should be @rows with a positive row count");
                if (rows is int earlier && earlier != given)
                    throw new FormatException($"sweep configuration '{name}': {earlier} and {given} rows per micro-batch: give @rows (or DeviceBatchSize=) once");
                rows = given;
            }
            else
            {
                sets.Add(word);
            }
        }
        return new SweepConfig(name, sets, rows ?? Hyperparameters.Default.DeviceBatchSize);
    }

    /// <summary>The knobs of this configuration (validated), with its rows per micro-batch and one micro-batch a step.</summary>
    public Hyperparameters Knobs(int seqLen)
    {
        var h = Runner.Knobs.Apply(Hyperparameters.Default, Sets);
        long tokens = (long)DeviceBatch * seqLen;
        if (tokens > int.MaxValue)
            throw new ArgumentException($"{DeviceBatch} rows of {seqLen} tokens are {tokens} tokens a step, more than TotalBatchSize can hold ({int.MaxValue}): use fewer @rows");
        return (h with { DeviceBatchSize = DeviceBatch, TotalBatchSize = (int)tokens }).Validate();
    }
}
