namespace AutoResearch.Native;

/// <summary>
/// What one loaded kernel was compiled to: registers a thread (the launch figure for kernels that move registers between
/// warpgroups with setmaxnreg), local memory a thread (register spills, or arrays indexed at run time) and statically
/// declared shared memory a block.
/// </summary>
/// <param name="File">The kernel file (e.g. rmsnorm.cu).</param>
/// <param name="Options">The file's own compile options (e.g. -DHEAD_DIM=128), space-separated; empty when none.</param>
public sealed record KernelResources(string File, string Options, string Kernel, int Registers, int LocalBytes, int StaticSharedBytes);
