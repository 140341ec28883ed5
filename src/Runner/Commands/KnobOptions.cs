using System.CommandLine;

namespace AutoResearch.Runner;

/// <summary>
/// The repeatable <c>--set Name=Value</c> option of train, profile and parity, and how a command turns its defaults, its own
/// flags that stand for knobs (<c>--depth</c> for Depth, <c>--device-batch</c> for DeviceBatchSize, ...) and the overrides
/// into one validated <see cref="Hyperparameters"/>, before any data is read or any GPU work starts.
/// </summary>
public static class KnobOptions
{
    /// <summary>A command's flag that stands for a knob, with the value given on the command line.</summary>
    public readonly record struct Shortcut(string Flag, string Knob, string Value);

    /// <summary>The <c>--set</c> option; its help says how to use it and where the knobs are listed.</summary>
    public static Option<string[]> CreateSetOption() => new("--set")
    {
        Description = "Set a knob for this run: --set Name=Value, repeatable (e.g. --set Depth=12 --set HeadDim=64 --set Activation=swiglu); "
            + "`autoresearch knobs` lists every knob with its default and range",
        HelpName = "Name=Value",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>
    /// <paramref name="start"/>, then the shortcuts given, then the <c>--set</c> assignments in order (a later one wins), validated.
    /// A knob given both by a shortcut and by <c>--set</c> with different values is an error naming both; an unknown knob is an
    /// error naming it and listing the known ones.
    /// </summary>
    public static Hyperparameters Resolve(Hyperparameters start, IEnumerable<Shortcut> shortcuts, IReadOnlyList<string> assignments)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(shortcuts);
        ArgumentNullException.ThrowIfNull(assignments);
        var given = shortcuts.ToList();
        foreach (var assignment in assignments)
        {
            var (name, value) = Knobs.Split(assignment);
            var knob = Knobs.Find(name);
            foreach (var shortcut in given.Where(s => s.Knob == knob.Name))
            {
                if (Normalise(knob.Name, shortcut.Value) != Normalise(knob.Name, value))
                    throw new ArgumentException($"{shortcut.Flag} {shortcut.Value} and --set {assignment} disagree: give {knob.Name} once");
            }
        }
        var h = Knobs.Apply(start, given.Select(s => $"{s.Knob}={s.Value}"));
        return Knobs.Apply(h, assignments).Validate();
    }

    /// <summary>
    /// The defaults with a command's <c>--depth</c> and <c>--device-batch</c> shortcuts (where given on the command line) and its
    /// <c>--set</c> assignments: <see cref="Resolve"/> for profile and paths.
    /// </summary>
    public static Hyperparameters ResolveDepthAndBatch(ParseResult parse, Option<int> depth, Option<int> batch, Option<string[]> set)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var shortcuts = new List<Shortcut>();
        if (parse.GetResult(depth) is { Implicit: false })
            shortcuts.Add(new("--depth", nameof(Hyperparameters.Depth), $"{parse.GetValue(depth)}"));
        if (parse.GetResult(batch) is { Implicit: false })
            shortcuts.Add(new("--device-batch", nameof(Hyperparameters.DeviceBatchSize), $"{parse.GetValue(batch)}"));
        return Resolve(Hyperparameters.Default, shortcuts, parse.GetValue(set) ?? []);
    }

    /// <summary>Whether the assignments set that knob (by its exact name; assignments may spell it in any case).</summary>
    public static bool Sets(IReadOnlyList<string> assignments, string knob)
    {
        ArgumentNullException.ThrowIfNull(assignments);
        return assignments.Any(a => Knobs.Find(Knobs.Split(a).Name).Name == knob);
    }

    /// <summary>A knob's value as the registry writes it (so 0.50 and 0.5, or SwiGLU and swiglu, compare equal).</summary>
    public static string Normalise(string knob, string value)
    {
        string text = Knobs.Values(Knobs.With(Hyperparameters.Default, knob, value))[Knobs.Find(knob).Name];
        return Knobs.Find(knob).Type == typeof(string) ? text.ToLowerInvariant() : text;
    }
}
