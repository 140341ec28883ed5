namespace AutoResearch.Native;

/// <summary>A kernel in a loaded module (borrowed handle: valid while its <see cref="CudaModule"/> lives).</summary>
public readonly unsafe record struct CudaKernel(CudaDevice Device, IntPtr Handle, string Name)
{
    /// <summary>Raises the kernel's dynamic shared memory limit (needed above 48 KB).</summary>
    public void SetMaxDynamicSharedMemory(int bytes)
    {
        Device.MakeCurrent();
        Cuda.cuFuncSetAttribute(Handle, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes).Check();
    }

    public int GetAttribute(CUfunction_attribute attribute)
    {
        Device.MakeCurrent();
        Cuda.cuFuncGetAttribute(out int value, attribute, Handle).Check();
        return value;
    }

    /// <summary>Registers per thread, as compiled (the resource report); a kernel that moves registers between warpgroups with
    /// setmaxnreg reports its launch figure.</summary>
    public int Registers => GetAttribute(CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS);

    /// <summary>Local memory per thread, as compiled: register spills and arrays the compiler could not keep in registers.</summary>
    public int LocalBytes => GetAttribute(CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES);

    /// <summary>Statically declared shared memory per block (the dynamic window comes on top, at launch).</summary>
    public int StaticSharedBytes => GetAttribute(CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES);

    /// <summary>Launches the kernel on <paramref name="stream"/>; arguments in the kernel's parameter order.</summary>
    public void Launch(Dim3 grid, Dim3 block, int sharedMemoryBytes, CudaStream stream, params ReadOnlySpan<KernelArg> args)
        => Launch(grid, block, sharedMemoryBytes, stream, ReadOnlySpan<TensorMap>.Empty, args);

    /// <summary>
    /// Launches a kernel whose first parameters are tensor maps (<c>const __grid_constant__</c> 128-byte structs), followed by
    /// <paramref name="args"/>.
    /// </summary>
    public void Launch(Dim3 grid, Dim3 block, int sharedMemoryBytes, CudaStream stream, ReadOnlySpan<TensorMap> maps, params ReadOnlySpan<KernelArg> args)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Device.MakeCurrent();
        int count = maps.Length + args.Length;
        ulong* slots = stackalloc ulong[Math.Max(args.Length, 1)];
        TensorMap* mapCopies = stackalloc TensorMap[Math.Max(maps.Length, 1)];
        void** pointers = stackalloc void*[Math.Max(count, 1)];
        for (int i = 0; i < maps.Length; i++)
        {
            mapCopies[i] = maps[i];
            pointers[i] = mapCopies + i;
        }
        for (int i = 0; i < args.Length; i++)
        {
            slots[i] = args[i].Bits;
            pointers[maps.Length + i] = slots + i;
        }
        var status = Cuda.cuLaunchKernel(Handle, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
            (uint)sharedMemoryBytes, stream.Handle, pointers, null);
        if (status != CUresult.CUDA_SUCCESS)
            status.Check($"cuLaunchKernel({Name}, grid {grid.X}x{grid.Y}x{grid.Z}, block {block.X}x{block.Y}x{block.Z}, shared {sharedMemoryBytes} B)");
    }
}
