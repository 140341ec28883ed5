using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>cuBLASLt (libcublasLt): matmul with explicit layouts, algorithm heuristics and a workspace. C names kept.</summary>
public static unsafe partial class CublasLt
{
    [LibraryImport(NativeLibraries.CublasLt)] public static partial cublasStatus_t cublasLtCreate(out IntPtr lightHandle);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial cublasStatus_t cublasLtDestroy(IntPtr lightHandle);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial nuint cublasLtGetVersion();

    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatmulDescCreate(out IntPtr matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial cublasStatus_t cublasLtMatmulDescDestroy(IntPtr matmulDesc);
    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatmulDescSetAttribute(IntPtr matmulDesc, cublasLtMatmulDescAttributes_t attr, void* buf, nuint sizeInBytes);

    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatrixLayoutCreate(out IntPtr matLayout, cudaDataType_t type, ulong rows, ulong cols, long ld);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial cublasStatus_t cublasLtMatrixLayoutDestroy(IntPtr matLayout);
    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatrixLayoutSetAttribute(IntPtr matLayout, cublasLtMatrixLayoutAttribute_t attr, void* buf, nuint sizeInBytes);

    [LibraryImport(NativeLibraries.CublasLt)] public static partial cublasStatus_t cublasLtMatmulPreferenceCreate(out IntPtr pref);
    [LibraryImport(NativeLibraries.CublasLt)] public static partial cublasStatus_t cublasLtMatmulPreferenceDestroy(IntPtr pref);
    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatmulPreferenceSetAttribute(IntPtr pref, cublasLtMatmulPreferenceAttributes_t attr, void* buf, nuint sizeInBytes);

    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatmulAlgoGetHeuristic(IntPtr lightHandle, IntPtr operationDesc, IntPtr Adesc, IntPtr Bdesc,
        IntPtr Cdesc, IntPtr Ddesc, IntPtr preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t* heuristicResultsArray, out int returnAlgoCount);

    [LibraryImport(NativeLibraries.CublasLt)]
    public static partial cublasStatus_t cublasLtMatmul(IntPtr lightHandle, IntPtr computeDesc, void* alpha, ulong A, IntPtr Adesc, ulong B, IntPtr Bdesc,
        void* beta, ulong C, IntPtr Cdesc, ulong D, IntPtr Ddesc, void* algo, ulong workspace, nuint workspaceSizeInBytes, IntPtr stream);
}
