using BenchmarkDotNet.Running;

// Run with: dotnet run -c Release --project bench -- --filter '*Gemm*'
// GPU benchmarks report "no usable CUDA device" and do nothing where none exists.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
