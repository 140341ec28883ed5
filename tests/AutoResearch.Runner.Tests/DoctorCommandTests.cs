using System.Diagnostics;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class DoctorCommandTests
{
    /// <summary>Runs the built CLI (autoresearch.dll, copied beside the tests) as a separate process.</summary>
    internal static (int ExitCode, string Stdout, string Stderr) RunCli(params string[] args) => RunCliWith(new Dictionary<string, string>(), args);

    /// <summary>Runs the built CLI as a separate process, with these environment variables set for it.</summary>
    internal static (int ExitCode, string Stdout, string Stderr) RunCliWith(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "autoresearch.dll");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        start.ArgumentList.Add(dll);
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(6)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"autoresearch {string.Join(' ', args)} did not finish in 6 minutes");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void Doctor_without_a_gpu_exits_non_zero_with_one_paragraph_saying_what_is_missing()
    {
        Assert.SkipWhen(GpuProbe.Available, "a GPU is present: this test checks the machine without one");
        var (exit, _, stderr) = RunCli("doctor");
        Assert.NotEqual(0, exit);
        Assert.Contains("no usable NVIDIA GPU", stderr, StringComparison.Ordinal);
        Assert.Contains("libcuda", stderr, StringComparison.Ordinal);
        Assert.Contains("--device cpu", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [GpuFact]
    [Trait("Category", "GPU")]
    public void Doctor_on_a_gpu_reports_the_power_limit_that_profile_measures_against()
    {
        var (exit, stdout, stderr) = RunCli("doctor", "--skip-gemm");
        Assert.True(exit == 0, stderr + stdout);
        Assert.Contains("doctor: OK", stdout, StringComparison.Ordinal);
        // A GPU host's driver brings NVML: the line gives the enforced limit in watts.
        var power = stdout.Split('\n').Single(l => l.StartsWith("Power:", StringComparison.Ordinal));
        Assert.SkipWhen(power.Contains("was not found", StringComparison.Ordinal), "no libnvidia-ml on this GPU host: " + power);
        Assert.Matches(@"limit \d+ W; `profile` reports the energy of a step", power);
    }

    [Fact]
    public void Doctor_help_lists_its_options()
    {
        var (exit, stdout, _) = RunCli("doctor", "--help");
        Assert.Equal(0, exit);
        Assert.Contains("--gemm-m", stdout, StringComparison.Ordinal);
        Assert.Contains("--skip-gemm", stdout, StringComparison.Ordinal);
    }
}
