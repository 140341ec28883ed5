using AutoResearch.Bench.Workbench;
using BenchmarkDotNet.Running;

// Run with: dotnet run -c Release --project bench -- --filter '*Gemm*'
// GPU benchmarks report "no usable CUDA device" and do nothing where none exists. The CPU data benchmarks
// (--filter '*TokenizerBenchmarks*' or '*LoaderBenchmarks*') also run on the shared corpus when AUTORESEARCH_BENCH_CORPUS names it.
// The kernel benchmarks (bench/Kernels, --filter 'AutoResearch.Bench.Kernels*') take our options first, the rest goes to
// BenchmarkDotNet: --short (a quick look) or --full (the default), --kernels DIR, --before DIR (a before/after table),
// --configs a,b, --cubins DIR, --list-configs (KernelBenchOptions, BenchConfigs).
try
{
    if (args.Contains("--list-configs"))
    {
        foreach (var line in BenchConfigs.Describe())
            Console.WriteLine(line);
        return 0;
    }
    var (options, rest) = KernelBenchOptions.Parse(args, Environment.GetEnvironmentVariable);
    KernelBenchOptions.Current = options;
    BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest);
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"bench: {e.Message}");
    return 2;
}
