using System.Runtime.InteropServices;
using System.Text;

namespace AutoResearch.Native;

/// <summary>Compiles CUDA C++ source to a cubin (and optionally PTX) with NVRTC.</summary>
public static unsafe class NvrtcCompiler
{
    /// <summary>The compiler output: the cubin image, the PTX when asked for, and the log (warnings).</summary>
    public sealed record Output(byte[] Cubin, string? Ptx, string Log);

    /// <summary>NVRTC's version, e.g. (13, 0).</summary>
    public static (int Major, int Minor) Version()
    {
        NativeLibraries.Ensure(NativeLibraries.Nvrtc);
        Nvrtc.nvrtcVersion(out int major, out int minor).Check();
        return (major, minor);
    }

    /// <summary>
    /// Compiles <paramref name="source"/>; <paramref name="sourceName"/> is the name NVRTC puts in its messages, and the folder
    /// it searches first for a quoted #include (a relative name is taken from the working directory, so pass the file's
    /// full path when it includes headers). Throws <see cref="NvrtcCompileException"/> with the log.
    /// </summary>
    public static Output Compile(string source, string sourceName, IReadOnlyList<string> options, bool includePtx = false)
        => Run(source, sourceName, options, program =>
        {
            Nvrtc.nvrtcGetCUBINSize(program, out nuint cubinSize).Check();
            if (cubinSize == 0)
                throw new InvalidOperationException($"NVRTC produced no cubin for {sourceName}: pass a real architecture (--gpu-architecture=sm_XX), not compute_XX.");
            var cubin = new byte[(int)cubinSize];
            fixed (byte* c = cubin)
                Nvrtc.nvrtcGetCUBIN(program, c).Check();
            return (cubin, includePtx ? ReadPtx(program) : null);
        });

    /// <summary>
    /// Compiles <paramref name="source"/> to PTX only, for any architecture NVRTC knows, virtual ones (compute_90) included: no
    /// GPU and no cubin needed, e.g. to compare a kernel's instructions before and after a change on a machine without the GPU
    /// it targets. Throws <see cref="NvrtcCompileException"/> with the log.
    /// </summary>
    public static string CompileToPtx(string source, string sourceName, IReadOnlyList<string> options)
        => Run(source, sourceName, options, program => (Array.Empty<byte>(), (string?)ReadPtx(program))).Ptx!;

    private static Output Run(string source, string sourceName, IReadOnlyList<string> options, Func<IntPtr, (byte[] Cubin, string? Ptx)> read)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        NativeLibraries.Ensure(NativeLibraries.Nvrtc);
        var sourceBytes = Utf8Z(source);
        var nameBytes = Utf8Z(sourceName);
        IntPtr program;
        fixed (byte* s = sourceBytes, n = nameBytes)
            Nvrtc.nvrtcCreateProgram(out program, s, n, 0, null, null).Check();
        try
        {
            var optionHandles = new GCHandle[options.Count];
            var optionPointers = new IntPtr[options.Count];
            nvrtcResult compileStatus;
            try
            {
                for (int i = 0; i < options.Count; i++)
                {
                    optionHandles[i] = GCHandle.Alloc(Utf8Z(options[i]), GCHandleType.Pinned);
                    optionPointers[i] = optionHandles[i].AddrOfPinnedObject();
                }
                fixed (IntPtr* o = optionPointers)
                    compileStatus = Nvrtc.nvrtcCompileProgram(program, options.Count, (byte**)o);
            }
            finally
            {
                foreach (var h in optionHandles)
                {
                    if (h.IsAllocated)
                        h.Free();
                }
            }
            string log = ReadLog(program);
            if (compileStatus == nvrtcResult.NVRTC_ERROR_COMPILATION)
                throw new NvrtcCompileException(sourceName, log, options);
            compileStatus.Check($"nvrtcCompileProgram({sourceName})");
            var (cubin, ptx) = read(program);
            return new Output(cubin, ptx, log);
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program).Check();
        }
    }

    private static string ReadPtx(IntPtr program)
    {
        Nvrtc.nvrtcGetPTXSize(program, out nuint ptxSize).Check();
        var ptxBytes = new byte[(int)ptxSize];
        fixed (byte* p = ptxBytes)
            Nvrtc.nvrtcGetPTX(program, p).Check();
        return Encoding.UTF8.GetString(ptxBytes).TrimEnd('\0');
    }

    private static string ReadLog(IntPtr program)
    {
        Nvrtc.nvrtcGetProgramLogSize(program, out nuint size).Check();
        if (size <= 1)
            return string.Empty;
        var bytes = new byte[(int)size];
        fixed (byte* b = bytes)
            Nvrtc.nvrtcGetProgramLog(program, b).Check();
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    private static byte[] Utf8Z(string s)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
