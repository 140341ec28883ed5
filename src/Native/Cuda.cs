using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>
/// The CUDA driver API (libcuda.so.1), the subset this project needs, with the C names and the current
/// versioned entry points named explicitly (the bare names bind legacy versions).
/// Device pointers are <c>CUdeviceptr</c> = <see cref="ulong"/>; contexts, streams, events, modules and functions are opaque pointers.
/// </summary>
public static unsafe partial class Cuda
{
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuInit(uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDriverGetVersion(out int driverVersion);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuGetErrorName(CUresult error, out byte* pStr);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuGetErrorString(CUresult error, out byte* pStr);

    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDeviceGetCount(out int count);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDeviceGet(out int device, int ordinal);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDeviceGetName(byte* name, int len, int dev);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDeviceTotalMem_v2(out nuint bytes, int dev);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDeviceGetAttribute(out int pi, CUdevice_attribute attrib, int dev);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDeviceGetPCIBusId(byte* pciBusId, int len, int dev);

    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDevicePrimaryCtxRetain(out IntPtr pctx, int dev);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuDevicePrimaryCtxRelease_v2(int dev);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuCtxSetCurrent(IntPtr ctx);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuCtxSynchronize();

    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemGetInfo_v2(out nuint free, out nuint total);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemAlloc_v2(out ulong dptr, nuint bytesize);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemFree_v2(ulong dptr);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemAllocHost_v2(out void* pp, nuint bytesize);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemFreeHost(void* p);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemsetD8_v2(ulong dstDevice, byte uc, nuint n);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemsetD32_v2(ulong dstDevice, uint ui, nuint n);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemsetD8Async(ulong dstDevice, byte uc, nuint n, IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemsetD32Async(ulong dstDevice, uint ui, nuint n, IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemcpyHtoD_v2(ulong dstDevice, void* srcHost, nuint byteCount);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemcpyDtoH_v2(void* dstHost, ulong srcDevice, nuint byteCount);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemcpyDtoD_v2(ulong dstDevice, ulong srcDevice, nuint byteCount);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemcpyHtoDAsync_v2(ulong dstDevice, void* srcHost, nuint byteCount, IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemcpyDtoHAsync_v2(void* dstHost, ulong srcDevice, nuint byteCount, IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuMemcpyDtoDAsync_v2(ulong dstDevice, ulong srcDevice, nuint byteCount, IntPtr hStream);

    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuStreamCreate(out IntPtr phStream, uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuStreamDestroy_v2(IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuStreamSynchronize(IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuStreamWaitEvent(IntPtr hStream, IntPtr hEvent, uint flags);

    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuEventCreate(out IntPtr phEvent, uint flags);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuEventDestroy_v2(IntPtr hEvent);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuEventRecord(IntPtr hEvent, IntPtr hStream);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuEventSynchronize(IntPtr hEvent);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuEventQuery(IntPtr hEvent);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuEventElapsedTime(out float pMilliseconds, IntPtr hStart, IntPtr hEnd);

    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuModuleLoadData(out IntPtr module, void* image);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuModuleUnload(IntPtr hmod);
    [LibraryImport(NativeLibraries.Cuda, StringMarshalling = StringMarshalling.Utf8)]
    public static partial CUresult cuModuleGetFunction(out IntPtr hfunc, IntPtr hmod, string name);
    [LibraryImport(NativeLibraries.Cuda, StringMarshalling = StringMarshalling.Utf8)]
    public static partial CUresult cuModuleGetGlobal_v2(out ulong dptr, out nuint bytes, IntPtr hmod, string name);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuFuncSetAttribute(IntPtr hfunc, CUfunction_attribute attrib, int value);
    [LibraryImport(NativeLibraries.Cuda)] public static partial CUresult cuFuncGetAttribute(out int pi, CUfunction_attribute attrib, IntPtr hfunc);
    [LibraryImport(NativeLibraries.Cuda)]
    public static partial CUresult cuLaunchKernel(IntPtr f, uint gridDimX, uint gridDimY, uint gridDimZ,
        uint blockDimX, uint blockDimY, uint blockDimZ, uint sharedMemBytes, IntPtr hStream, void** kernelParams, void** extra);

    [LibraryImport(NativeLibraries.Cuda)]
    public static partial CUresult cuTensorMapEncodeTiled(TensorMap* tensorMap, CUtensorMapDataType tensorDataType, uint tensorRank,
        ulong globalAddress, ulong* globalDim, ulong* globalStrides, uint* boxDim, uint* elementStrides, CUtensorMapInterleave interleave,
        CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2Promotion, CUtensorMapFloatOOBfill oobFill);
}
