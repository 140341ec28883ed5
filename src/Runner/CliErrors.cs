using System.CommandLine;

namespace AutoResearch.Runner;

/// <summary>
/// Runs the command line and turns every exception into one message on stderr and a non-zero exit,
/// with the stack trace only under --verbose.
/// </summary>
public static class CliErrors
{
    /// <summary>Global option: print stack traces with errors.</summary>
    public static readonly Option<bool> VerboseOption = new("--verbose") { Description = "Print stack traces with errors", Recursive = true };

    /// <summary>Exit code for a failure the user can act on (bad input, missing device, ...).</summary>
    public const int FailureExitCode = 1;

    public static int Invoke(RootCommand root, string[] args)
    {
        ArgumentNullException.ThrowIfNull(root);
        var parse = root.Parse(args);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("autoresearch: stopped (Ctrl-C).");
            return 130;
        }
#pragma warning disable CA1031 // The CLI boundary: every error becomes a message and an exit code.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Console.Error.WriteLine($"autoresearch: error: {e.Message}");
            if (parse.GetValue(VerboseOption))
                Console.Error.WriteLine(e);
            return FailureExitCode;
        }
    }
}
