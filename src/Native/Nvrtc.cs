using System.Runtime.InteropServices;

namespace AutoResearch.Native;

/// <summary>NVRTC (libnvrtc): run-time compilation of CUDA C++ to PTX and cubin. C names kept.</summary>
public static unsafe partial class Nvrtc
{
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcVersion(out int major, out int minor);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial byte* nvrtcGetErrorString(nvrtcResult result);
    [LibraryImport(NativeLibraries.Nvrtc)]
    public static partial nvrtcResult nvrtcCreateProgram(out IntPtr prog, byte* src, byte* name, int numHeaders, byte** headers, byte** includeNames);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcDestroyProgram(ref IntPtr prog);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcCompileProgram(IntPtr prog, int numOptions, byte** options);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcGetProgramLogSize(IntPtr prog, out nuint logSizeRet);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcGetProgramLog(IntPtr prog, byte* log);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcGetCUBINSize(IntPtr prog, out nuint cubinSizeRet);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcGetCUBIN(IntPtr prog, byte* cubin);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcGetPTXSize(IntPtr prog, out nuint ptxSizeRet);
    [LibraryImport(NativeLibraries.Nvrtc)] public static partial nvrtcResult nvrtcGetPTX(IntPtr prog, byte* ptx);
}
