using System.Diagnostics;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>`compile-kernel --resources`, as a tuner runs it on a machine with NVRTC and no GPU.</summary>
public class CompileKernelCommandTests
{
    private static (int Exit, string Stdout, string Stderr) CompileKernel(string input, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "autoresearch.dll"));
        start.ArgumentList.Add("compile-kernel");
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        process.StandardInput.Write(input);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "compile-kernel did not finish in 2 minutes");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [NvrtcFact]
    public void Resources_lists_each_kernel_of_the_cubin_and_names_the_one_with_local_memory()
    {
        using var folder = new TempFolder();
        string name = folder.File("probe.cu"), cubin = folder.File("probe.cubin");

        var (exit, stdout, stderr) = CompileKernel(ProbeKernels.Resources, "--resources", "--name", name, "--out", cubin, "--", "--gpu-architecture=sm_80", "-DUNUSED=1");

        Assert.True(exit == 0, stderr);
        Assert.True(File.Exists(cubin));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("kernel", lines[0], StringComparison.Ordinal);
        var local = lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["local_array", "probe.cu", "-DUNUSED=1"], local[..3]); // the -D options label the rows, not the architecture
        Assert.Equal("256", local[4]);
        Assert.StartsWith("plain ", lines[2], StringComparison.Ordinal);
        Assert.StartsWith("static_shared ", lines[3], StringComparison.Ordinal);
        Assert.Equal("local memory (register spills, or arrays indexed at run time) in 1 of 3 kernels: local_array (probe.cu -DUNUSED=1) 256 B a thread", lines[4]);
    }

    [NvrtcFact]
    public void A_compile_that_succeeds_with_warnings_prints_the_log_to_standard_error()
    {
        using var folder = new TempFolder();
        string cubin = folder.File("warn.cubin");

        var (exit, stdout, stderr) = CompileKernel(ProbeKernels.Warning, "--name", folder.File("warn.cu"), "--out", cubin, "--", "--gpu-architecture=sm_80");

        Assert.True(exit == 0, stderr);
        Assert.True(File.Exists(cubin));
        Assert.Contains("NVRTC's log for warn.cu", stderr, StringComparison.Ordinal);
        Assert.Contains("never_used_here", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("never_used_here", stdout, StringComparison.Ordinal);

        // A clean compile prints nothing there.
        var (cleanExit, _, cleanStderr) = CompileKernel("extern \"C\" __global__ void k(float* o) { o[threadIdx.x] = 1.0f; }\n", "--name", folder.File("clean.cu"),
            "--out", folder.File("clean.cubin"), "--", "--gpu-architecture=sm_80");
        Assert.Equal(0, cleanExit);
        Assert.Equal("", cleanStderr.Trim());
    }

    [NvrtcFact]
    public void Log_keeps_a_compiles_warnings_in_a_file_and_a_clean_compile_empties_it()
    {
        using var folder = new TempFolder();
        string log = folder.File("warn.cubin.log");

        var (exit, _, stderr) = CompileKernel(ProbeKernels.Warning, "--name", folder.File("warn.cu"), "--out", folder.File("warn.cubin"), "--log", log, "--",
            "--gpu-architecture=sm_80");

        Assert.True(exit == 0, stderr);
        Assert.Contains("never_used_here", File.ReadAllText(log), StringComparison.Ordinal);

        // The same path after a clean compile: the log is replaced by an empty one, so it never describes another cubin.
        var (cleanExit, _, cleanStderr) = CompileKernel("extern \"C\" __global__ void k(float* o) { o[threadIdx.x] = 1.0f; }\n", "--name", folder.File("clean.cu"),
            "--out", folder.File("warn.cubin"), "--log", log, "--", "--gpu-architecture=sm_80");
        Assert.True(cleanExit == 0, cleanStderr);
        Assert.Equal("", File.ReadAllText(log));
    }

    [Fact]
    public void Log_with_ptx_is_refused_before_compiling()
    {
        using var folder = new TempFolder();

        var (exit, _, stderr) = CompileKernel(ProbeKernels.Warning, "--ptx", "--log", folder.File("x.log"), "--name", folder.File("warn.cu"), "--out", folder.File("warn.ptx"), "--",
            "--gpu-architecture=compute_80");

        Assert.Equal(2, exit);
        Assert.Contains("--log keeps a cubin compile's log: it does not go with --ptx", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(folder.File("warn.ptx")));
        Assert.False(File.Exists(folder.File("x.log")));
    }

    [Fact]
    public void Resources_with_ptx_is_refused_before_compiling()
    {
        using var folder = new TempFolder();

        var (exit, _, stderr) = CompileKernel(ProbeKernels.Resources, "--resources", "--ptx", "--name", folder.File("probe.cu"), "--out", folder.File("probe.ptx"), "--",
            "--gpu-architecture=compute_80");

        Assert.Equal(2, exit);
        Assert.Contains("--resources reads a cubin: it does not go with --ptx", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(folder.File("probe.ptx")));
    }

    [Fact]
    public void Options_the_runner_always_passes_are_added_only_where_missing()
    {
        const string toolkit = "/opt/cuda-x/include";
        var bare = CompileKernelCommand.CompleteOptions(["--gpu-architecture=sm_90a", "-DHEAD_DIM=128"], toolkit);
        Assert.Equal(["--gpu-architecture=sm_90a", "-DHEAD_DIM=128", "--std=c++17", "--device-as-default-execution-space", "--include-path=" + toolkit], bare);

        // What the runner's workers pass (CubinStore.BaseOptions) comes back unchanged.
        string[] runner = ["--gpu-architecture=sm_90a", "--std=c++17", "--device-as-default-execution-space", "-lineinfo", "--include-path=/k", "--include-path=" + toolkit, "-DX=1"];
        Assert.Equal(runner, CompileKernelCommand.CompleteOptions(runner, toolkit));

        // A standard of the caller's own is kept; without a toolkit folder no include path is made up.
        var own = CompileKernelCommand.CompleteOptions(["-std=c++20"], null);
        Assert.Equal(["-std=c++20", "--device-as-default-execution-space"], own);
    }
}
