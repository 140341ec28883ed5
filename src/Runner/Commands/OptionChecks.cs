using System.CommandLine;
using System.Globalization;

namespace AutoResearch.Runner;

/// <summary>
/// Checks on option values, run while the command line is parsed: a value out of range is a parse error naming the flag, what
/// it expects and what it got, before anything loads.
/// </summary>
public static class OptionChecks
{
    /// <summary>At least 1 (a count: layers, rows, tokens).</summary>
    public static Option<int> AtLeastOne(this Option<int> option)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.Validators.Add(r =>
        {
            int value = r.GetValueOrDefault<int>();
            if (value < 1)
                r.AddError(string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be at least 1; got {value}"));
        });
        return option;
    }

    /// <summary>At least 1 (a count of tokens).</summary>
    public static Option<long> AtLeastOne(this Option<long> option)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.Validators.Add(r =>
        {
            long value = r.GetValueOrDefault<long>();
            if (value < 1)
                r.AddError(string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be at least 1; got {value}"));
        });
        return option;
    }

    /// <summary>A positive, finite number (seconds).</summary>
    public static Option<double> PositiveFinite(this Option<double> option, string unit)
    {
        ArgumentNullException.ThrowIfNull(option);
        option.Validators.Add(r =>
        {
            double value = r.GetValueOrDefault<double>();
            if (!IsPositiveFinite(value))
                r.AddError(string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be a positive, finite number of {unit}; got {value}"));
        });
        return option;
    }

    /// <summary>True for a number above 0 that is neither infinite nor NaN.</summary>
    public static bool IsPositiveFinite(double value) => value > 0 && double.IsFinite(value);
}
