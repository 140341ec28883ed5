using System.Diagnostics;
using System.Reflection;
using AutoResearch.Native;

namespace AutoResearch.Runner.Training;

/// <summary>
/// Compiles kernel files in child processes of this program (<see cref="CompileKernelCommand"/>), one per file: the worker
/// handed to <see cref="KernelCache.CompileAhead"/> when the cache is cold. NVRTC serialises the compiles of one process in
/// some versions, so threads alone may not run them side by side; processes do.
/// </summary>
public static class KernelCompileProcesses
{
    /// <summary>
    /// The worker, or null when this process is not the runner (a test host or a benchmark), which has no compile-kernel
    /// command to start: callers then compile in threads (<see cref="CubinStore.CompileInProcess"/>).
    /// </summary>
    public static KernelCompileWorker? Worker()
        => StartInfo() is { } start ? For(start.FileName, [.. start.ArgumentList]) : null;

    /// <summary>The worker that starts <paramref name="fileName"/> with <paramref name="leadingArguments"/> (e.g. dotnet autoresearch.dll) then compile-kernel.</summary>
    public static KernelCompileWorker For(string fileName, IReadOnlyList<string> leadingArguments)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(fileName);
        ArgumentNullException.ThrowIfNull(leadingArguments);
        return (job, cancel) => Compile(fileName, leadingArguments, job, cancel);
    }

    /// <summary>Runs compile-kernel for <paramref name="job"/>; throws with the child's error output (NVRTC's log) when it fails.</summary>
    private static void Compile(string fileName, IReadOnlyList<string> leadingArguments, KernelCompileJob job, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(job);
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var argument in leadingArguments)
            start.ArgumentList.Add(argument);
        start.ArgumentList.Add("compile-kernel");
        start.ArgumentList.Add("--name");
        start.ArgumentList.Add(job.SourcePath);
        start.ArgumentList.Add("--out");
        start.ArgumentList.Add(job.CubinPath);
        start.ArgumentList.Add("--log"); // the compile's warnings beside the cubin, as an in-process compile keeps them
        start.ArgumentList.Add(CubinStore.LogPath(job.CubinPath));
        start.ArgumentList.Add("--");
        foreach (var option in job.Options)
            start.ArgumentList.Add(option);
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        Task<string> output, error;
        try
        {
            output = process.StandardOutput.ReadToEndAsync(cancel);
            error = process.StandardError.ReadToEndAsync(cancel);
            process.StandardInput.Write(job.Source);
            process.StandardInput.Close();
            process.WaitForExitAsync(cancel).GetAwaiter().GetResult();
        }
        catch
        {
            // Cancelled (the cache was disposed: a failed set-up, a stopped run) or the pipes broke: the child goes too,
            // rather than compiling on for a minute with nobody waiting.
            Stop(process);
            throw;
        }
        if (process.ExitCode != 0)
        {
            var message = string.Join('\n', new[] { error.GetAwaiter().GetResult(), output.GetAwaiter().GetResult() }.Where(t => !string.IsNullOrWhiteSpace(t))).Trim();
            throw new InvalidOperationException($"compile-kernel {job.FileName} exited with {process.ExitCode}: {message}");
        }
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or AggregateException or System.ComponentModel.Win32Exception)
        {
            // it ended meanwhile, or cannot be killed: the cancellation stands either way
        }
    }

    /// <summary>How to start this program again: the apphost itself, or `dotnet runner.dll`; null when the entry point is not the runner.</summary>
    private static ProcessStartInfo? StartInfo()
    {
        var entry = Assembly.GetEntryAssembly();
        var path = Environment.ProcessPath;
        if (entry != typeof(CompileKernelCommand).Assembly || path is null)
            return null;
        var start = new ProcessStartInfo(path);
        if (string.Equals(Path.GetFileNameWithoutExtension(path), "dotnet", StringComparison.OrdinalIgnoreCase))
            start.ArgumentList.Add(entry.Location);
        return start;
    }
}
