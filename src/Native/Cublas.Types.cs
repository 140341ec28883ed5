namespace AutoResearch.Native;

/// <summary>cuBLAS status codes (values from cublas_api.h).</summary>
public enum cublasStatus_t
{
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16,
}

/// <summary>Transpose flags.</summary>
public enum cublasOperation_t
{
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
}

/// <summary>Element types (library_types.h).</summary>
public enum cudaDataType_t
{
    CUDA_R_32F = 0,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
}

/// <summary>Compute (accumulation) types.</summary>
public enum cublasComputeType_t
{
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
}

/// <summary>Math modes for <see cref="Cublas.cublasSetMathMode"/>.</summary>
public enum cublasMath_t
{
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_PEDANTIC_MATH = 2,
}

/// <summary>cuBLASLt matmul descriptor attributes.</summary>
public enum cublasLtMatmulDescAttributes_t
{
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
}

/// <summary>cuBLASLt matrix layout attributes.</summary>
public enum cublasLtMatrixLayoutAttribute_t
{
    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,
    CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,
}

/// <summary>cuBLASLt preference attributes.</summary>
public enum cublasLtMatmulPreferenceAttributes_t
{
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
}

/// <summary>One heuristic answer of <see cref="CublasLt.cublasLtMatmulAlgoGetHeuristic"/> (96 bytes, as in cublasLt.h).</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
public unsafe struct cublasLtMatmulHeuristicResult_t
{
    public fixed ulong algo[8];
    public nuint workspaceSize;
    public cublasStatus_t state;
    public float wavesCount;
    public fixed int reserved[4];
}
