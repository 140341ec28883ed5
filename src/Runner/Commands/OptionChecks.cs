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
        => option.Require(value => value >= 1, value => AtLeastOneMessage(option, value));

    /// <summary>At least 1 when given (a count whose default comes from elsewhere).</summary>
    public static Option<int?> AtLeastOne(this Option<int?> option)
        => option.Require(given => given is not { } value || value >= 1, given => AtLeastOneMessage(option, given!.Value));

    /// <summary>At least 1 (a count of tokens).</summary>
    public static Option<long> AtLeastOne(this Option<long> option)
        => option.Require(value => value >= 1, value => AtLeastOneMessage(option, value));

    private static string AtLeastOneMessage(Option option, long value)
        => string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be at least 1; got {value}");

    /// <summary>A positive, finite number (seconds).</summary>
    public static Option<double> PositiveFinite(this Option<double> option, string unit)
        => option.Require(IsPositiveFinite, value => string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be a positive, finite number of {unit}; got {value}"));

    /// <summary>
    /// A check of the value: <paramref name="message"/> (naming the flag, what it expects and the value) when <paramref name="ok"/>
    /// is false. A value that does not convert is left to the parser's own error: reading it here would throw out of the parse.
    /// </summary>
    public static Option<T> Require<T>(this Option<T> option, Func<T, bool> ok, Func<T, string> message)
    {
        ArgumentNullException.ThrowIfNull(option);
        ArgumentNullException.ThrowIfNull(ok);
        ArgumentNullException.ThrowIfNull(message);
        option.Validators.Add(r =>
        {
            if (TryValue(r, out T value) && !ok(value))
                r.AddError(message(value));
        });
        return option;
    }

    /// <summary>The option's value; false when it did not convert (that error is reported already, naming the value).</summary>
    private static bool TryValue<T>(System.CommandLine.Parsing.OptionResult result, out T value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default!;
            return false;
        }
    }

    /// <summary>True for a number above 0 that is neither infinite nor NaN.</summary>
    public static bool IsPositiveFinite(double value) => value > 0 && double.IsFinite(value);
}
