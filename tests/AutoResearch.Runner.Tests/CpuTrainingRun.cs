using System.Diagnostics;
using AutoResearch.Testing;

namespace AutoResearch.Runner.Tests;

/// <summary>
/// One prepared cache (the embedded sample, the contract's 8192-token tokenizer) and one `train --device cpu` of it, run once as a child
/// process for the tests of <see cref="CpuTrainingEndToEndTests"/>, which read its output and checkpoint.
/// </summary>
public sealed class CpuTrainingRun : IDisposable
{
    /// <summary>Counted training seconds of the run: with the 11 uncounted steps and the evaluation, ~45 s on two cores.</summary>
    public const int BudgetSeconds = 10;

    public CpuTrainingRun()
    {
        Cache = TestGpu.NewTempDirectory("cpu-train");
        var (exit, stdout, stderr) = DoctorCommandTests.RunCliWith(
            new Dictionary<string, string> { [AutoResearch.Data.Shards.ShardDownloader.BaseUrlVariable] = LoopbackShardServer.RefusingBaseUrl().ToString() },
            "prepare", "--cache", Cache);
        if (exit != 0)
            throw new InvalidOperationException($"prepare failed ({exit}): {stderr}\n{stdout}");
        Checkpoint = Path.Combine(Cache, "tiny.safetensors");
        var watch = Stopwatch.StartNew();
        (ExitCode, Stdout, Stderr) = DoctorCommandTests.RunCli("train", "--device", "cpu", "--cache", Cache, "--time-budget",
            BudgetSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--save", Checkpoint);
        WallSeconds = watch.Elapsed.TotalSeconds;
    }

    public string Cache { get; }

    public string Checkpoint { get; }

    public int ExitCode { get; }

    public string Stdout { get; }

    public string Stderr { get; }

    public double WallSeconds { get; }

    public void Dispose() => Directory.Delete(Cache, recursive: true);
}
