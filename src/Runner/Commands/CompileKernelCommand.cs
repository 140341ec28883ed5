using System.CommandLine;
using AutoResearch.Native;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch compile-kernel`: compiles one kernel source, read from standard input, with NVRTC and writes the cubin.
/// The worker behind <see cref="Training.KernelCompileProcesses"/>: a run with a cold kernel cache starts one per file, so the
/// files compile side by side whether or not NVRTC runs the compiles of one process in parallel. Errors go to standard error
/// (NVRTC's log included), exit code 1; the caller then compiles the file itself and reports the error. A cubin compile that
/// succeeds with warnings (ptxas's included, such as wgmma products serialised) prints NVRTC's log to standard error too, and
/// with --log keeps it in a file (the runner's workers keep it beside the cubin: <see cref="CubinStore.LogPath"/>). With --ptx it writes
/// the PTX instead, for any architecture (compute_90 needs no GPU): what a kernel change does to the instructions, on a
/// machine without the GPU; with --resources it prints what each kernel of the cubin was compiled to (registers, local and
/// static shared memory: <see cref="CubinResources"/>), which needs no GPU either. Options every kernel of the runner is
/// compiled with are added where the command line lacks them (<see cref="CompleteOptions"/>), so a hand-run compile finds the
/// CUDA headers and builds what the runner builds.
/// </summary>
public static class CompileKernelCommand
{
    /// <summary>
    /// <paramref name="options"/> plus what <see cref="CubinStore.BaseOptions"/> always passes and they lack: the language
    /// standard, functions on the device by default and the CUDA toolkit's include folder (<paramref name="toolkitInclude"/>, where
    /// cuda_bf16.h is; none when null). The runner's own workers pass them all, so nothing is added there.
    /// </summary>
    public static IReadOnlyList<string> CompleteOptions(IReadOnlyList<string> options, string? toolkitInclude)
    {
        ArgumentNullException.ThrowIfNull(options);
        var result = new List<string>(options);
        bool Has(params string[] prefixes) => options.Any(o => prefixes.Any(p => o.StartsWith(p, StringComparison.Ordinal)));
        if (!Has("--std", "-std"))
            result.Add(CubinStore.LanguageStandardOption);
        if (!Has(CubinStore.DeviceDefaultOption, "-default-device"))
            result.Add(CubinStore.DeviceDefaultOption);
        if (toolkitInclude is not null && !options.Any(o => o == $"--include-path={toolkitInclude}" || o == $"-I{toolkitInclude}"))
            result.Add($"--include-path={toolkitInclude}");
        return result;
    }

    public static Command Create()
    {
        var name = new Option<string>("--name") { Description = "The source's full path: NVRTC's name for it, where quoted includes are looked for first", Required = true };
        var output = new Option<string>("--out") { Description = "Where the cubin (or the PTX) goes (written to a temporary name, then renamed)", Required = true };
        var ptx = new Option<bool>("--ptx")
        {
            Description = "Write the PTX instead of a cubin; the architecture may be a virtual one (--gpu-architecture=compute_90), which needs no GPU",
        };
        var resources = new Option<bool>("--resources")
        {
            Description = "Also print each kernel's registers a thread, local memory (spills) and static shared memory, read from the cubin (no GPU needed)",
        };
        var log = new Option<string?>("--log")
        {
            Description = "Also keep NVRTC's log of a successful cubin compile in this file, written before the cubin (empty for a clean compile); "
                + "the runner keeps each cached cubin's log so, and reports its performance notes (wgmma serialised) when it loads the cubin",
        };
        var options = new Argument<string[]>("options") { Description = "NVRTC options, after --", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("compile-kernel",
            "Compile one kernel source, read from standard input, to a cubin with NVRTC (what train starts once per file on a cold kernel cache). "
            + "Example: autoresearch compile-kernel --name $PWD/kernels/rotary.cu --out rotary.cubin -- --gpu-architecture=sm_90a -DHEAD_DIM=128 < kernels/rotary.cu")
        {
            name, output, ptx, resources, log, options,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(ptx) && parse.GetValue(resources))
            {
                Console.Error.WriteLine("--resources reads a cubin: it does not go with --ptx");
                return 2;
            }
            if (parse.GetValue(ptx) && parse.GetValue(log) is not null)
            {
                Console.Error.WriteLine("--log keeps a cubin compile's log: it does not go with --ptx");
                return 2;
            }
            var source = Console.In.ReadToEnd();
            var nvrtcOptions = CompleteOptions(parse.GetValue(options) ?? [], CubinStore.ToolkitIncludeDirectory());
            try
            {
                byte[] image;
                if (parse.GetValue(ptx))
                {
                    image = System.Text.Encoding.UTF8.GetBytes(NvrtcCompiler.CompileToPtx(source, parse.GetValue(name)!, nvrtcOptions));
                }
                else
                {
                    var compiled = NvrtcCompiler.Compile(source, parse.GetValue(name)!, nvrtcOptions);
                    image = compiled.Cubin;
                    // Warnings of a compile that succeeded, ptxas's among them (e.g. wgmma serialised): a tuner needs to see them.
                    if (!string.IsNullOrWhiteSpace(compiled.Log))
                    {
                        Console.Error.WriteLine($"NVRTC's log for {Path.GetFileName(parse.GetValue(name)!)} (compiled; warnings only):");
                        Console.Error.WriteLine(compiled.Log.TrimEnd());
                    }
                    if (parse.GetValue(log) is { } logPath)
                        CubinStore.TryKeepLog(logPath, compiled.Log);
                }
                CubinStore.WriteAtomically(parse.GetValue(output)!, image);
                if (parse.GetValue(resources))
                {
                    // The rows name the file and its -D options (the defines that pick a variant, e.g. -DHEAD_DIM=128).
                    var rows = CubinResources.Read(image, Path.GetFileName(parse.GetValue(name)!), string.Join(' ', nvrtcOptions.Where(o => o.StartsWith("-D", StringComparison.Ordinal))));
                    foreach (var line in KernelResourceReport.Table(rows))
                        Console.WriteLine(line);
                    Console.WriteLine(KernelResourceReport.LocalMemoryLine(rows, "of the cubin"));
                }
                return 0;
            }
            catch (NvrtcCompileException e)
            {
                Console.Error.WriteLine(e.Message);
                return 1;
            }
        });
        return command;
    }
}
