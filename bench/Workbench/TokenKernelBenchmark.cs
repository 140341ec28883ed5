using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// A kernel benchmark over the model's tokens: B rows of T, the training micro-batch (128 × 2048) as BenchmarkDotNet
/// parameters, the model shape built at that T, and its width C.
/// </summary>
public abstract class TokenKernelBenchmark : KernelBenchmark
{
    [Params(128)]
    public int B { get; set; } = 128;

    [Params(2048)]
    public int T { get; set; } = 2048;

    protected override int SeqLen => T;

    /// <summary>The model's width.</summary>
    protected int C => Shape.ModelDim;
}
