using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// Status checks that read as one call: <c>Cuda.cuCtxSynchronize().Check()</c>. The failing expression is captured by
/// <see cref="CallerArgumentExpressionAttribute"/> and the library's own error string is put into the exception.
/// </summary>
public static unsafe class StatusChecks
{
    public static void Check(this CUresult status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != CUresult.CUDA_SUCCESS)
            ThrowCuda(status, call);
    }

    public static void Check(this nvrtcResult status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != nvrtcResult.NVRTC_SUCCESS)
            ThrowNvrtc(status, call);
    }

    public static void Check(this cublasStatus_t status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status != cublasStatus_t.CUBLAS_STATUS_SUCCESS)
            ThrowCublas(status, call);
    }

    /// <summary>The driver's name and description of a status (falls back to the number when the driver cannot say).</summary>
    public static (string Name, string Text) Describe(CUresult status)
    {
        string name = status.ToString();
        string text = "no description from the driver";
        try
        {
            NativeLibraries.Ensure(NativeLibraries.Cuda);
            if (Cuda.cuGetErrorName(status, out byte* n) == CUresult.CUDA_SUCCESS && n != null)
                name = Marshal.PtrToStringUTF8((IntPtr)n) ?? name;
            if (Cuda.cuGetErrorString(status, out byte* s) == CUresult.CUDA_SUCCESS && s != null)
                text = Marshal.PtrToStringUTF8((IntPtr)s) ?? text;
        }
        catch (NativeLibraryNotFoundException)
        {
            // Describing an error must never hide it.
        }
        return (name, text);
    }

    [DoesNotReturn]
    private static void ThrowCuda(CUresult status, string call)
    {
        var (name, text) = Describe(status);
        throw new CudaException("CUDA driver", call, (int)status, name, text);
    }

    [DoesNotReturn]
    private static void ThrowNvrtc(nvrtcResult status, string call)
    {
        string text = "no description from NVRTC";
        try
        {
            NativeLibraries.Ensure(NativeLibraries.Nvrtc);
            var p = Nvrtc.nvrtcGetErrorString(status);
            if (p != null)
                text = Marshal.PtrToStringUTF8((IntPtr)p) ?? text;
        }
        catch (NativeLibraryNotFoundException)
        {
        }
        throw new CudaException("NVRTC", call, (int)status, status.ToString(), text);
    }

    [DoesNotReturn]
    private static void ThrowCublas(cublasStatus_t status, string call)
    {
        string text = "no description from cuBLAS";
        try
        {
            NativeLibraries.Ensure(NativeLibraries.Cublas);
            var p = Cublas.cublasGetStatusString(status);
            if (p != null)
                text = Marshal.PtrToStringUTF8((IntPtr)p) ?? text;
        }
        catch (NativeLibraryNotFoundException)
        {
        }
        throw new CudaException("cuBLAS", call, (int)status, status.ToString(), text);
    }
}
