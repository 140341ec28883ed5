namespace AutoResearch.Native;

/// <summary>A device allocation failed for lack of memory: names the allocation and what was free.</summary>
public sealed class DeviceOutOfMemoryException : Exception
{
    public DeviceOutOfMemoryException(string owner, long requestedBytes, long freeBytes, long totalBytes)
        : base($"out of device memory allocating {requestedBytes / 1048576.0:F1} MiB for '{owner}' "
            + $"({freeBytes / 1048576.0:F1} MiB free of {totalBytes / 1048576.0:F1} MiB)")
    {
        Owner = owner;
        RequestedBytes = requestedBytes;
        FreeBytes = freeBytes;
    }

    public string Owner { get; }

    public long RequestedBytes { get; }

    public long FreeBytes { get; }
}
