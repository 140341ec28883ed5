using System.Globalization;

namespace AutoResearch.Runner.Experiment;

/// <summary>
/// The one-line training progress display, rewritten in place: it starts with '\r' and ends with spaces that wipe
/// what a longer previous line left. Example:
/// <c>\rstep 00042 (13.5%) | loss: 4.123456 | lrm: 1.00 | dt: 312ms | tok/sec: 1,680,410 | mfu: 39.8% | epoch: 1 | remaining: 259s</c>
/// </summary>
public static class ProgressLine
{
    /// <param name="step">Step index just run.</param>
    /// <param name="progress">Fraction of the time budget done, [0, 1].</param>
    /// <param name="smoothedLoss">Debiased EMA of the training loss.</param>
    /// <param name="lrMultiplier">Schedule multiplier applied this step.</param>
    /// <param name="stepSeconds">Synchronised wall time of the step.</param>
    /// <param name="tokensPerSecond">Tokens per second of the step.</param>
    /// <param name="mfuPercent">MFU of the step, percent.</param>
    /// <param name="epoch">The pass over the training data the step read from: 1 during the first.</param>
    /// <param name="remainingSeconds">Budget left.</param>
    public static string Format(int step, double progress, double smoothedLoss, double lrMultiplier, double stepSeconds,
        double tokensPerSecond, double mfuPercent, int epoch, double remainingSeconds)
    {
        return string.Create(CultureInfo.InvariantCulture,
            $"\rstep {step:D5} ({100 * progress:F1}%) | loss: {smoothedLoss:F6} | lrm: {lrMultiplier:F2} | dt: {stepSeconds * 1000:F0}ms | " +
            $"tok/sec: {Math.Round(tokensPerSecond):N0} | mfu: {mfuPercent:F1}% | epoch: {epoch} | remaining: {remainingSeconds:F0}s    ");
    }
}
