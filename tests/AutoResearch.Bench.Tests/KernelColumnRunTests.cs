using AutoResearch.Bench.Workbench;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>
/// The kernel columns read through a real BenchmarkDotNet run with the kernel benchmarks' own config (in process, where the
/// benchmark that runs is an emitted subclass of the family class): what a case records while it runs must come back in
/// its row of the summary. A stand-in benchmark records fixed device times, so the expected cells are known without a GPU.
/// </summary>
[Collection(BenchOptionsCollection.Name)]
public class KernelColumnRunTests
{
    /// <summary>Records Size milliseconds per invocation for work of Size × 10⁹ bytes: 1 TB/s in every case.</summary>
    public class StandInKernelBenchmarks
    {
        private KernelTimings.Entry? _entry;

        [Params(1, 2)]
        public int Size { get; set; }

        [GlobalSetup]
        public void Setup() => _entry = KernelTimings.Start(KernelTimings.KeyOf(this, nameof(Launch)), KernelWork.Memory(Size * 1e9), $"stand-in {Size}");

        [Benchmark]
        public void Launch() => _entry!.Add(Size);
    }

    [Fact]
    public void What_a_case_records_in_process_reaches_its_row_of_the_summary()
    {
        var saved = KernelBenchOptions.Current;
        var artifacts = Directory.CreateTempSubdirectory("kernel-columns-");
        try
        {
            KernelBenchOptions.Current = new KernelBenchOptions { Short = true };
            var config = new KernelBenchmarkConfig()
                .WithArtifactsPath(artifacts.FullName)
                .WithOptions(ConfigOptions.DisableOptimizationsValidator | ConfigOptions.DisableLogFile);
            var summary = BenchmarkRunner.Run<StandInKernelBenchmarks>(config);
            Assert.Equal(2, summary.BenchmarksCases.Length);
            Assert.False(summary.HasCriticalValidationErrors);
            foreach (var benchmarkCase in summary.BenchmarksCases)
            {
                int size = (int)benchmarkCase.Parameters["Size"];
                Assert.Equal(size == 1 ? "1000.0" : "2000.0", KernelColumn.DeviceTime.GetValue(summary, benchmarkCase));
                Assert.Equal("1.00", KernelColumn.Terabytes.GetValue(summary, benchmarkCase));
                Assert.Equal("-", KernelColumn.Teraflops.GetValue(summary, benchmarkCase));
                Assert.Equal($"stand-in {size}", KernelColumn.Check.GetValue(summary, benchmarkCase));
            }
        }
        finally
        {
            KernelBenchOptions.Current = saved;
            artifacts.Delete(recursive: true);
        }
    }
}
