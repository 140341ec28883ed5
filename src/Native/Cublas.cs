using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>cuBLAS (libcublas), column-major as in C; <see cref="Blas"/> gives the row-major view the model uses.</summary>
public static unsafe partial class Cublas
{
    [LibraryImport(NativeLibraries.Cublas)] public static partial cublasStatus_t cublasCreate_v2(out IntPtr handle);
    [LibraryImport(NativeLibraries.Cublas)] public static partial cublasStatus_t cublasDestroy_v2(IntPtr handle);
    [LibraryImport(NativeLibraries.Cublas)] public static partial cublasStatus_t cublasGetVersion_v2(IntPtr handle, out int version);
    [LibraryImport(NativeLibraries.Cublas)] public static partial byte* cublasGetStatusString(cublasStatus_t status);
    [LibraryImport(NativeLibraries.Cublas)] public static partial cublasStatus_t cublasSetStream_v2(IntPtr handle, IntPtr streamId);
    [LibraryImport(NativeLibraries.Cublas)] public static partial cublasStatus_t cublasSetWorkspace_v2(IntPtr handle, ulong workspace, nuint workspaceSizeInBytes);
    [LibraryImport(NativeLibraries.Cublas)] public static partial cublasStatus_t cublasSetMathMode(IntPtr handle, cublasMath_t mode);

    [LibraryImport(NativeLibraries.Cublas)]
    public static partial cublasStatus_t cublasGemmEx(IntPtr handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
        void* alpha, ulong A, cudaDataType_t Atype, int lda, ulong B, cudaDataType_t Btype, int ldb,
        void* beta, ulong C, cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType, int algo);

    [LibraryImport(NativeLibraries.Cublas)]
    public static partial cublasStatus_t cublasGemmStridedBatchedEx(IntPtr handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
        void* alpha, ulong A, cudaDataType_t Atype, int lda, long strideA, ulong B, cudaDataType_t Btype, int ldb, long strideB,
        void* beta, ulong C, cudaDataType_t Ctype, int ldc, long strideC, int batchCount, cublasComputeType_t computeType, int algo);

    [LibraryImport(NativeLibraries.Cublas)]
    public static partial cublasStatus_t cublasSgemm_v2(IntPtr handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
        float* alpha, ulong A, int lda, ulong B, int ldb, float* beta, ulong C, int ldc);

    /// <summary>cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT: let cuBLAS choose (tensor cores for bf16).</summary>
    public const int CUBLAS_GEMM_DEFAULT = -1;
}
