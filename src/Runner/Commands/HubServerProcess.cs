using System.Diagnostics;
using System.Runtime.InteropServices;

namespace AutoResearch.Runner;

/// <summary>
/// Runs the autoresearch-hub executable as a child of `autoresearch hub serve` and forwards SIGTERM, SIGINT, SIGQUIT and SIGHUP
/// to it, so that stopping the CLI stops the server; the CLI exits when the server does, with its exit code.
/// </summary>
public static class HubServerProcess
{
    public static int Run(string file, IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var a in arguments)
            psi.ArgumentList.Add(a);
        using var child = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var registrations = new List<PosixSignalRegistration>();
        if (!OperatingSystem.IsWindows())
        {
            foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT, PosixSignal.SIGHUP })
            {
                registrations.Add(PosixSignalRegistration.Create(signal, context =>
                {
                    // The CLI stays until the server has stopped; the server decides how to shut down.
                    context.Cancel = true;
                    Forward(child, context.Signal);
                }));
            }
        }
        try
        {
            child.WaitForExit();
            return child.ExitCode;
        }
        finally
        {
            foreach (var r in registrations)
                r.Dispose();
        }
    }

    private static void Forward(Process child, PosixSignal signal)
    {
        int number = signal switch
        {
            PosixSignal.SIGHUP => 1,
            PosixSignal.SIGINT => 2,
            PosixSignal.SIGQUIT => 3,
            _ => 15,
        };
        try
        {
            if (!child.HasExited && kill(child.Id, number) != 0)
                Console.Error.WriteLine($"autoresearch: could not pass signal {number} to the hub server (pid {child.Id}): errno {Marshal.GetLastPInvokeError()}");
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    // DllImport, not LibraryImport: the generated stub would need unsafe code in the runner for one blittable call.
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
