using System.Globalization;
using System.Reflection;

namespace AutoResearch.Runner;

/// <summary>Marks a property of <see cref="Hyperparameters"/> as a knob: what it does and the values it takes.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class KnobAttribute(string description, string range) : Attribute
{
    public string Description { get; } = description;

    public string Range { get; } = range;
}

/// <summary>
/// The knobs of <see cref="Hyperparameters"/> by name, for <c>--set Name=Value</c> (train, profile, parity) and the
/// <c>knobs</c> listing: every property marked <see cref="KnobAttribute"/>, its type (integer, number or text), default,
/// description and range. Names match case-insensitively; an unknown name or an unparsable value is an error naming it.
/// </summary>
public static class Knobs
{
    /// <summary>One knob: its property, type and default.</summary>
    public sealed record Knob(string Name, Type Type, string Default, string Description, string Range)
    {
        internal PropertyInfo Property { get; init; } = null!;
    }

    /// <summary>Every knob in declaration order.</summary>
    public static IReadOnlyList<Knob> All { get; } = typeof(Hyperparameters)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.GetCustomAttribute<KnobAttribute>() is not null)
        .OrderBy(p => p.MetadataToken)
        .Select(p =>
        {
            var a = p.GetCustomAttribute<KnobAttribute>()!;
            return new Knob(p.Name, p.PropertyType, Format(p.GetValue(Hyperparameters.Default)), a.Description, a.Range) { Property = p };
        })
        .ToArray();

    /// <summary>The knob of that name (any case), or an error listing the known ones.</summary>
    public static Knob Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return All.FirstOrDefault(k => string.Equals(k.Name, name.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"unknown knob '{name}'; the knobs are: {string.Join(", ", All.Select(k => k.Name))} (`autoresearch knobs` describes them)");
    }

    /// <summary>Applies "Name=Value" overrides in order (a later one wins) and returns the new knobs (not yet validated).</summary>
    public static Hyperparameters Apply(Hyperparameters start, IEnumerable<string> assignments)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(assignments);
        var result = start;
        foreach (var assignment in assignments)
        {
            var (name, value) = Split(assignment);
            result = With(result, name, value);
        }
        return result;
    }

    /// <summary>"Name=Value" split at the first '='; anything else is an error showing the expected form.</summary>
    public static (string Name, string Value) Split(string assignment)
    {
        ArgumentNullException.ThrowIfNull(assignment);
        int eq = assignment.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
            throw new ArgumentException($"--set '{assignment}': expected Name=Value, e.g. --set Depth=12");
        return (assignment[..eq].Trim(), assignment[(eq + 1)..].Trim());
    }

    /// <summary>A copy of <paramref name="h"/> with one knob set from text.</summary>
    public static Hyperparameters With(Hyperparameters h, string name, string value)
    {
        ArgumentNullException.ThrowIfNull(h);
        var knob = Find(name);
        object parsed = Parse(knob, value.Trim());
        var copy = h with { };
        knob.Property.SetValue(copy, parsed);
        return copy;
    }

    /// <summary>The knobs whose value differs from the default, as Name=Value, in declaration order.</summary>
    public static IReadOnlyList<string> Changed(Hyperparameters h)
        => All.Where(k => Format(k.Property.GetValue(h)) != k.Default).Select(k => $"{k.Name}={Format(k.Property.GetValue(h))}").ToArray();

    /// <summary>Every knob as Name=Value (what a checkpoint records).</summary>
    public static IReadOnlyDictionary<string, string> Values(Hyperparameters h)
        => All.ToDictionary(k => k.Name, k => Format(k.Property.GetValue(h)), StringComparer.Ordinal);

    /// <summary>The knob's type as a word for listings.</summary>
    public static string TypeName(Type type) => type == typeof(int) ? "integer" : type == typeof(double) ? "number" : "text";

    private static object Parse(Knob knob, string value)
    {
        if (knob.Type == typeof(int))
        {
            return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i
                : throw new ArgumentException($"--set {knob.Name}={value}: expected an integer ({knob.Range})");
        }
        if (knob.Type == typeof(double))
        {
            return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) ? d
                : throw new ArgumentException($"--set {knob.Name}={value}: expected a finite number ({knob.Range})");
        }
        return value.Length > 0 ? value : throw new ArgumentException($"--set {knob.Name}=: expected a value ({knob.Range})");
    }

    private static string Format(object? value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        int i => i.ToString(CultureInfo.InvariantCulture),
        _ => value?.ToString() ?? "",
    };
}
