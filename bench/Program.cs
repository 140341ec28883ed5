using BenchmarkDotNet.Running;

// Run with: dotnet run -c Release --project bench -- --filter '*Gemm*'
// GPU benchmarks report "no usable CUDA device" and do nothing where none exists. The CPU data benchmarks
// (--filter '*TokenizerBenchmarks*' or '*LoaderBenchmarks*') also run on the shared corpus when AUTORESEARCH_BENCH_CORPUS names it.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
