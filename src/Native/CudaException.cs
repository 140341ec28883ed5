namespace AutoResearch.Native;

/// <summary>A native call failed: the message names the call (as written in the source) and the library's own error text.</summary>
public sealed class CudaException : Exception
{
    public CudaException(string library, string call, int status, string statusName, string statusText)
        : base(Format(library, call, status, statusName, statusText))
    {
        Call = call;
        Status = status;
        StatusName = statusName;
    }

    /// <summary>The failing expression, e.g. <c>cuMemAlloc_v2(out ptr, bytes)</c>.</summary>
    public string Call { get; }

    /// <summary>The raw status code.</summary>
    public int Status { get; }

    /// <summary>The status's symbolic name, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>.</summary>
    public string StatusName { get; }

    /// <summary>The message format shared by every native library: "library call failed: NAME (code): text".</summary>
    public static string Format(string library, string call, int status, string statusName, string statusText)
        => $"{library} call {call} failed: {statusName} ({status}): {statusText}";
}
