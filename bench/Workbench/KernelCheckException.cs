namespace AutoResearch.Bench.Workbench;

/// <summary>
/// A kernel's output disagreed with the fp64 CPU reference before it was timed: the benchmark refuses to time it. The message
/// names the kernel, every tensor that failed, the error found and its bound, and the seed of the random inputs.
/// </summary>
public sealed class KernelCheckException : Exception
{
    public KernelCheckException(string kernel, IReadOnlyList<KernelCheck.Comparison> failures, string message)
        : base(message)
    {
        Kernel = kernel;
        Failures = failures;
    }

    public KernelCheckException()
    {
        Kernel = "";
        Failures = [];
    }

    public KernelCheckException(string message)
        : base(message)
    {
        Kernel = "";
        Failures = [];
    }

    public KernelCheckException(string message, Exception innerException)
        : base(message, innerException)
    {
        Kernel = "";
        Failures = [];
    }

    /// <summary>The kernel (or kernels) checked.</summary>
    public string Kernel { get; }

    /// <summary>The tensors outside their bounds.</summary>
    public IReadOnlyList<KernelCheck.Comparison> Failures { get; }
}
