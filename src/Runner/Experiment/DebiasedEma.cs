namespace AutoResearch.Runner.Experiment;

/// <summary>
/// Exponential moving average with bias correction, for the progress line's smoothed training loss:
/// s ← β·s + (1−β)·x; reported s / (1 − β^n) after n updates (β = 0.9 by default).
/// </summary>
public sealed class DebiasedEma(double beta = 0.9)
{
    private double smoothed;
    private double betaPower = 1.0;

    /// <summary>Adds a value and returns the debiased average so far.</summary>
    public double Update(double value)
    {
        smoothed = beta * smoothed + (1.0 - beta) * value;
        betaPower *= beta;
        return Value;
    }

    /// <summary>The debiased average (NaN before the first update).</summary>
    public double Value => betaPower < 1.0 ? smoothed / (1.0 - betaPower) : double.NaN;
}
