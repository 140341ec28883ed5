using System.CommandLine;
using AutoResearch.Native;

namespace AutoResearch.Runner;

/// <summary>
/// Runs the command line and turns every error into one message on stderr starting <c>autoresearch: error:</c> and a non-zero
/// exit, with the stack trace only under --verbose: exceptions, and parse errors too (no help dump). Ctrl-C and SIGTERM are
/// handled by <see cref="TerminationSignals"/>.
/// </summary>
public static class CliErrors
{
    /// <summary>Global option: print stack traces with errors.</summary>
    public static readonly Option<bool> VerboseOption = new("--verbose") { Description = "Print stack traces with errors", Recursive = true };

    /// <summary>Exit code for a failure the user can act on (bad input, missing device, ...).</summary>
    public const int FailureExitCode = 1;

    /// <summary>Exit code for a command line that does not parse (an unknown option, a value of the wrong type, a failed check).</summary>
    public const int UsageExitCode = 2;

    /// <summary>Runs the process's command line on the console; signals end it through <see cref="Environment.Exit"/>.</summary>
    public static int Invoke(RootCommand root, string[] args)
    {
        using var signals = new TerminationSignals(Console.Out, Console.Error, Environment.Exit);
        return Invoke(root, args, Console.Out, Console.Error, signals.Token);
    }

    /// <summary>Runs a command line with its output and errors going to the given writers.</summary>
    public static int Invoke(RootCommand root, string[] args, TextWriter output, TextWriter error, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(error);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One line: System.CommandLine's messages may list choices on lines of their own.
            var messages = parse.Errors.Select(e => string.Join(' ', e.Message.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
            error.WriteLine($"autoresearch: error: {string.Join("; ", messages.Distinct(StringComparer.Ordinal))}");
            error.WriteLine($"(see `{CommandPath(parse.CommandResult.Command)} --help`)");
            return UsageExitCode;
        }
        try
        {
            var configuration = new InvocationConfiguration
            {
                Output = output,
                Error = error,
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null, // TerminationSignals handles Ctrl-C and SIGTERM
            };
            return parse.InvokeAsync(configuration, cancel).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            var signal = TerminationSignals.Received;
            error.WriteLine(signal is { } s ? $"autoresearch: stopped by {TerminationSignals.Describe(s)}" : "autoresearch: stopped");
            return TerminationSignals.ExitCode(signal);
        }
#pragma warning disable CA1031 // The CLI boundary: every error becomes a message and an exit code.
        catch (Exception e)
#pragma warning restore CA1031
        {
            error.WriteLine($"autoresearch: error: {Message(e)}");
            if (parse.GetValue(VerboseOption))
                error.WriteLine(e);
            return FailureExitCode;
        }
    }

    /// <summary>The message of an error in one paragraph: a missing native library names itself, not every place tried.</summary>
    private static string Message(Exception e) => e switch
    {
        NativeLibraryNotFoundException missing =>
            $"{missing.Library} could not be loaded ({missing.Attempts.Count} places tried; --verbose lists them). {missing.InstallHint} "
            + "This command needs an NVIDIA GPU; without one, `autoresearch train --device cpu` runs a tiny model on the CPU.",
        ArgumentException argument when argument.ParamName is not null => WithoutParameterName(argument),
        _ => e.Message,
    };

    /// <summary>
    /// An argument error's message without what .NET appends for programmers: " (Parameter 'name')", the name of a C# parameter or
    /// property, and for a value out of range a second line "Actual value was …", kept as "(got …)" where the message does not
    /// already say it.
    /// </summary>
    private static string WithoutParameterName(ArgumentException e)
    {
        string text = e.Message;
        string? actual = null;
        if (e is ArgumentOutOfRangeException { ActualValue: { } value })
        {
            actual = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
            int line = text.LastIndexOf(Environment.NewLine, StringComparison.Ordinal);
            if (line >= 0)
                text = text[..line];
        }
        string suffix = $" (Parameter '{e.ParamName}')";
        if (text.EndsWith(suffix, StringComparison.Ordinal))
            text = text[..^suffix.Length];
        return actual is not null && !text.Contains(actual, StringComparison.Ordinal) ? $"{text} (got {actual})" : text;
    }

    /// <summary>"autoresearch results add" for the command that failed to parse.</summary>
    private static string CommandPath(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is Command c; s = c.Parents.FirstOrDefault())
            names.Insert(0, c.Parents.Any() ? c.Name : "autoresearch");
        return string.Join(' ', names);
    }
}
