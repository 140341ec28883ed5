using System.Runtime.InteropServices;

namespace AutoResearch.Runner;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM for the command line. The first signal cancels the running command's token; a command that
/// stops within <see cref="Grace"/> reports it in its own words (train: "interrupted by SIGTERM at step N"). One that does not
/// (a long CPU step, a tokenizer being trained) is ended then with one line, so a signal is always acted on within a second;
/// a second signal ends the process at once. The exit code is 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
/// </summary>
/// <remarks>
/// Signals belong to the process, so what was received is process-wide (<see cref="Received"/>); one instance is installed
/// around a command by <see cref="CliErrors"/>. Files are written to temporary names and renamed, and prepare's swap of the
/// cache is finished by the next run, so ending the process mid-way damages nothing.
/// </remarks>
public sealed class TerminationSignals : IDisposable
{
    /// <summary>How long a command has to stop on its own after the first signal.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    private static PosixSignal? s_received;

    private readonly CancellationTokenSource _cancel = new();
    private readonly TextWriter _output;
    private readonly TextWriter _error;
    private readonly Action<int> _exit;
    private readonly List<PosixSignalRegistration> _registrations = [];
    private readonly Lock _gate = new();
    private Timer? _graceTimer;
    private int _signals;
    private bool _finished;

    /// <param name="output">Gets a line break before the process ends, so a progress line rewritten in place is finished.</param>
    /// <param name="error">Gets the one line a forced end prints.</param>
    /// <param name="exit">Ends the process (<see cref="Environment.Exit"/>).</param>
    public TerminationSignals(TextWriter output, TextWriter error, Action<int> exit)
    {
        _output = output;
        _error = error;
        _exit = exit;
        if (OperatingSystem.IsWindows() || OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal));
            _registrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal));
        }
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>The first termination signal this process received, if any.</summary>
    public static PosixSignal? Received => s_received;

    /// <summary>128 + the signal's number: 143 for SIGTERM, 130 for SIGINT (and for a cancellation without a signal).</summary>
    public static int ExitCode(PosixSignal? signal) => signal == PosixSignal.SIGTERM ? 143 : 130;

    /// <summary>"SIGTERM" or "Ctrl-C (SIGINT)".</summary>
    public static string Describe(PosixSignal signal) => signal == PosixSignal.SIGTERM ? "SIGTERM" : "Ctrl-C (SIGINT)";

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the default would end the process with no word; this class ends it itself
        var signal = context.Signal;
        if (Interlocked.Increment(ref _signals) > 1)
        {
            End(signal, "");
            return;
        }
        s_received = signal;
        _graceTimer = new Timer(_ => End(signal, $" (the command did not stop within {Grace.TotalSeconds:0} s)"), null, Grace, Timeout.InfiniteTimeSpan);
        try
        {
            _cancel.Cancel();
        }
        catch (AggregateException)
        {
            // A cancellation callback failed: the grace timer still ends the process.
        }
    }

    /// <summary>Ends the process with one line, unless the command has already finished.</summary>
    private void End(PosixSignal signal, string why)
    {
        lock (_gate)
        {
            if (_finished)
                return;
            _finished = true;
            _output.WriteLine();
            _output.Flush();
            _error.WriteLine($"autoresearch: stopped by {Describe(signal)}{why}");
            _error.Flush();
            _exit(ExitCode(signal));
        }
    }

    /// <summary>The command has finished: a signal from now on no longer ends the process from here.</summary>
    public void Dispose()
    {
        lock (_gate)
            _finished = true;
        _graceTimer?.Dispose();
        foreach (var registration in _registrations)
            registration.Dispose();
        _cancel.Dispose();
    }
}
