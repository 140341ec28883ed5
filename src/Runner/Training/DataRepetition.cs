using System.Globalization;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Runner.Experiment;

namespace AutoResearch.Runner.Training;

/// <summary>
/// Training data smaller than what a run reads: the run sees the same documents again and again, the model learns them by
/// heart (its training loss falls far below what unseen text gives) and val_bpb stops saying how well it models text. `train`
/// says so in a <c>warning:</c> line at the start, with the passes it expects, and again before the summary with the passes
/// it made. The start is an estimate (a step's time is not known yet); the end is counted by the loader.
/// </summary>
public static class DataRepetition
{
    /// <summary>The start-up estimate's rate on the GPU: 45% of the H100's dense bf16 peak, what the baseline sustains on an H100 or H200.</summary>
    public const double GpuFlopsPerSecond = 0.45 * ExperimentConstants.PeakFlopsPerSecond;

    /// <summary>The start-up estimate's rate of the fp64 CPU reference: about 1 GFLOP/s on two cores.</summary>
    public const double CpuFlopsPerSecond = 1e9;

    /// <summary>UTF-8 bytes per token assumed for a shard whose token count is not in the token cache.</summary>
    private const double BytesPerToken = 4;

    /// <summary>
    /// Token ids of the training shards (BOS included): exact from the token cache files' headers, estimated from the Parquet
    /// footers for shards without a valid file.
    /// </summary>
    public static (long Tokens, bool Estimated) TrainingTokens(IReadOnlyList<string> shards, ShardTokenCache? tokenCache)
    {
        ArgumentNullException.ThrowIfNull(shards);
        long tokens = 0;
        bool estimated = false;
        foreach (var shard in shards)
        {
            if (tokenCache is not null && tokenCache.TryCount(shard, out long documents, out long ids))
            {
                tokens += documents + ids;
                continue;
            }
            tokens += (long)(ParquetShards.TextBytes(shard) / BytesPerToken);
            estimated = true;
        }
        return (tokens, estimated);
    }

    /// <summary>Tokens a run will read: the uncounted warm-up steps, then the budget at <paramref name="flopsPerSecond"/>.</summary>
    public static double ExpectedTokens(long tokensPerStep, double budgetSeconds, double flopsPerToken, double flopsPerSecond)
        => ExperimentConstants.UncountedSteps * (double)tokensPerStep + budgetSeconds * flopsPerSecond / flopsPerToken;

    /// <summary>The start-of-run warning, or null when the data holds more than the run is expected to read.</summary>
    public static string? StartWarning(long dataTokens, bool estimated, double expectedTokens, double tokensPerSecond)
    {
        double passes = expectedTokens / Math.Max(1, dataTokens);
        if (passes <= 1)
            return null;
        return string.Create(CultureInfo.InvariantCulture,
            $"warning: the training data holds {(estimated ? "about " : "")}{Millions(dataTokens)} tokens and this run will read about {Millions(expectedTokens)} "
            + $"(the budget at an assumed {tokensPerSecond / 1e6:0.###} M tokens/s): about {passes:F0} passes over the same documents. {Consequence}");
    }

    /// <summary>The warning before the summary, or null when the run did not read its data more than once.</summary>
    public static string? EndWarning(double passes, long tokensPerPass)
    {
        if (passes <= 1)
            return null;
        return string.Create(CultureInfo.InvariantCulture,
            $"warning: this run made {passes:F1} passes over its training data ({Millions(tokensPerPass)} tokens a pass). {Consequence}");
    }

    private const string Consequence = "The model learns repeated documents by heart: the training loss falls far below what new text gives, and val_bpb "
        + "measures memorisation of this data, not comparable with runs on the full data (download more shards, or prepare --from a larger corpus)";

    private static string Millions(double tokens) => string.Create(CultureInfo.InvariantCulture, $"{tokens / 1e6:0.###} M");
}
