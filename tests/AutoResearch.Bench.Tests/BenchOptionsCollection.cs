using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>
/// Tests that set <c>KernelBenchOptions.Current</c> (the benchmarks read it, as they run in process): one collection, so they
/// run one at a time.
/// </summary>
[CollectionDefinition(Name)]
public sealed class BenchOptionsCollection
{
    public const string Name = "kernel bench options";
}
