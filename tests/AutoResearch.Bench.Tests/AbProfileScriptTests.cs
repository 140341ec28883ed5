using System.Globalization;
using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>
/// bench/device/ab-profile.sh in a published folder laid out as publish.sh makes it (baseline/, AutoResearch.Runner/ with its
/// kernels, dotnet/), with a stand-in for dotnet that writes a profile TSV whose time comes from the runner it is given: the
/// baseline's 20 ms, this build's 10 ms, or the TRIAL_MS a variant's copy of kernels/k.cu defines at its top; each further
/// call of the same runner adds 0.5 ms, so the medians and spreads are known.
/// </summary>
public class AbProfileScriptTests
{
    private const string StandInDotnet = """
        #!/usr/bin/env bash
        dll=$1; shift
        [ "$1" = profile ] && [ "$2" = --tsv ] || exit 9
        tsv=$3; shift 3
        here=$(dirname "$0")
        n=$(grep -cxF "$dll" "$here/calls.log" 2> /dev/null)
        echo "$dll" >> "$here/calls.log"
        echo "$*" >> "$here/args.log"
        ms=20
        case "$dll" in
          */baseline/*) ;;
          *) first=$(head -1 "$(dirname "$dll")/kernels/k.cu")
             case "$first" in "#define TRIAL_MS "*) ms=${first#"#define TRIAL_MS "} ;; *) ms=10 ;; esac ;;
        esac
        v=$(awk -v a="$ms" -v n="${n:-0}" 'BEGIN { printf "%.1f", a + 0.5 * n }')
        printf 'kind\tname\tvalue\tcalls\tflops\tbytes\nop\tGEMM x\t%s\t1\t\t\nstep\tmicro-step\t%s\t\t\t\nmemory\tpeak\t100\t\t\t\n' "$v" "$v" > "$tsv"
        printf 'energy\twhole-step\t%s\t\t\t\nclock\tSM median\t1500\t\t\t\n' "$v" >> "$tsv"
        """;

    private const string Kernel = "#ifndef TRIAL_MS\n#define TRIAL_MS 10\n#endif\n";

    private static KernelFolder Host()
    {
        var host = new KernelFolder();
        var scripts = DeviceScripts.Folder();
        foreach (var name in new[] { "ab-profile.sh", "clocks.sh", "sass-waits.sh" })
            File.Copy(Path.Combine(scripts, name), host.Sub(name));
        foreach (var folder in new[] { "baseline/AutoResearch.Runner", "AutoResearch.Runner/kernels", "dotnet" })
            Directory.CreateDirectory(host.Sub(folder));
        File.WriteAllText(host.Sub("baseline/AutoResearch.Runner/autoresearch.dll"), "");
        File.WriteAllText(host.Sub("AutoResearch.Runner/autoresearch.dll"), "");
        File.WriteAllText(host.Sub("baseline/REVISION"), "base000\n");
        File.WriteAllText(host.Sub("REVISION"), "this000\n");
        File.WriteAllText(host.Sub("AutoResearch.Runner/kernels/k.cu"), Kernel);
        DeviceScripts.WriteExecutable(host.Sub("dotnet/dotnet"), StandInDotnet + "\n");
        return host;
    }

    private static (int Exit, string Stdout, string Stderr) Run(KernelFolder host, params string[] args)
        => DeviceScripts.Run(host.Sub("ab-profile.sh"), args,
            new Dictionary<string, string?> { ["LOGS"] = host.Sub("logs"), ["STEP_TIMEOUT"] = null, ["CUOBJDUMP"] = "/nonexistent/cuobjdump" },
            TimeSpan.FromMinutes(2), host.Path);

    // Which side each profile ran, in order: A the baseline, B.. the variants' runner copies, P this build as published.
    private static string[] Calls(KernelFolder host) =>
        File.ReadAllLines(host.Sub("dotnet/calls.log")).Select(dll =>
            dll.Contains("/baseline/", StringComparison.Ordinal) ? "A"
            : dll.Contains("/logs/runner-", StringComparison.Ordinal) ? dll.Split("/logs/runner-")[1][..1]
            : "P").ToArray();

    // The table row named `name`, split on spaces after the name.
    private static string[] Row(string stdout, string name)
    {
        var line = stdout.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return line[name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    private static string Median(double first, int rounds) => (first + 0.5 * (rounds - 1) / 2).ToString("F3", CultureInfo.InvariantCulture);

    private static string Change(double baseline, double variant) => ((variant / baseline - 1) * 100).ToString("+0.0;-0.0", CultureInfo.InvariantCulture) + "%";

    [Fact]
    public void Variants_take_turns_with_one_baseline_and_each_gets_its_own_column()
    {
        using var host = Host();

        var (exit, stdout, stderr) = Run(host, "--rounds", "3", "--define", "k.cu:TRIAL_MS=5", "--variant", "plain",
            "--variant", "slow", "--define", "k.cu:TRIAL_MS=30", "--steps", "3");

        Assert.True(exit == 0, stderr + stdout);
        // Round 1 in order, round 2 reversed, round 3 in order: each variant one profile a round, the baseline one.
        Assert.Equal(["A", "B", "P", "D", "D", "P", "B", "A", "A", "B", "P", "D"], Calls(host));
        var args = File.ReadAllLines(host.Sub("dotnet/args.log"));
        Assert.Equal(12, args.Length);
        Assert.All(args, a => Assert.Equal("--steps 3", a));
        // The variants with defines ran from copies whose k.cu starts with the define; the published source is untouched.
        Assert.StartsWith("#define TRIAL_MS 5\n", File.ReadAllText(host.Sub("logs/runner-B/kernels/k.cu")), StringComparison.Ordinal);
        Assert.StartsWith("#define TRIAL_MS 30\n", File.ReadAllText(host.Sub("logs/runner-D/kernels/k.cu")), StringComparison.Ordinal);
        Assert.False(Directory.Exists(host.Sub("logs/runner-C")));
        Assert.Equal(Kernel, File.ReadAllText(host.Sub("AutoResearch.Runner/kernels/k.cu")));

        Assert.Contains("C: plain", stdout, StringComparison.Ordinal);
        Assert.Contains("D: slow with k.cu:TRIAL_MS=30", stdout, StringComparison.Ordinal);
        var header = stdout.Split('\n').Single(l => l.Contains("spread (A", StringComparison.Ordinal));
        Assert.Equal(["baseline", "this", "build", "change", "plain", "change", "slow", "change", "spread", "(A", "/", "B", "/", "C", "/", "D)"],
            header.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        string a20 = Median(20, 3), b5 = Median(5, 3), c10 = Median(10, 3), d30 = Median(30, 3);
        Assert.Equal([a20, b5, Change(20.5, 5.5), c10, Change(20.5, 10.5), d30, Change(20.5, 30.5), "1.000", "/", "1.000", "/", "1.000", "/", "1.000"],
            Row(stdout, "GEMM x"));
        Assert.Equal(a20, Row(stdout, "micro-step ms")[0]);
    }

    [Fact]
    public void Without_variants_it_compares_this_build_with_the_baseline_in_turns()
    {
        using var host = Host();

        var (exit, stdout, stderr) = Run(host, "--rounds", "2");

        Assert.True(exit == 0, stderr + stdout);
        Assert.Equal(["A", "P", "P", "A"], Calls(host));
        Assert.False(Directory.Exists(host.Sub("logs/runner-B")));
        Assert.Equal([Median(20, 2), Median(10, 2), Change(20.25, 10.25), "0.500", "/", "0.500"], Row(stdout, "GEMM x"));
        Assert.Equal(["100.000", "100.000", "+0.0%", "0.000", "/", "0.000"], Row(stdout, "peak MB"));
        // The power rows a GPU with NVML adds, in their own units.
        Assert.Equal([Median(20, 2), Median(10, 2), Change(20.25, 10.25), "0.500", "/", "0.500"], Row(stdout, "whole-step J"));
        Assert.Equal(["1500.000", "1500.000", "+0.0%", "0.000", "/", "0.000"], Row(stdout, "SM median MHz"));
    }

    [Fact]
    public void A_variant_can_take_a_kernel_source_from_another_file_before_its_defines()
    {
        using var host = Host();
        // A trial file from elsewhere: its own first line sets the stand-in's time; its body marks it as that file.
        const string trial = "#define TRIAL_MS 7\n// the trial's kernel\n";
        File.WriteAllText(host.Sub("trial.cu"), trial);

        var (exit, stdout, stderr) = Run(host, "--rounds", "3", "--variant", "branch", "--source", "k.cu:trial.cu",
            "--variant", "both", "--source", "k.cu:" + host.Sub("trial.cu"), "--define", "k.cu:TRIAL_MS=3");

        Assert.True(exit == 0, stderr + stdout);
        Assert.Equal(["A", "B", "C", "C", "B", "A", "A", "B", "C"], Calls(host));
        // The relative path is taken from the folder the script was called from; the defines go on top of the replaced file.
        Assert.Equal(trial, File.ReadAllText(host.Sub("logs/runner-B/kernels/k.cu")));
        Assert.Equal("#define TRIAL_MS 3\n" + trial, File.ReadAllText(host.Sub("logs/runner-C/kernels/k.cu")));
        Assert.Equal(Kernel, File.ReadAllText(host.Sub("AutoResearch.Runner/kernels/k.cu")));
        Assert.Contains("B: branch with k.cu from " + host.Sub("trial.cu"), stdout, StringComparison.Ordinal);
        Assert.Contains("C: both with k.cu from " + host.Sub("trial.cu") + " with k.cu:TRIAL_MS=3", stdout, StringComparison.Ordinal);
        Assert.Equal([Median(20, 3), Median(7, 3), Change(20.5, 7.5), Median(3, 3), Change(20.5, 3.5), "1.000", "/", "1.000", "/", "1.000"],
            Row(stdout, "GEMM x"));
    }

    [Theory]
    [InlineData("--variant|a|--source|k.cu:missing.cu", "--source takes FILE:PATH")]
    [InlineData("--variant|a|--source|other.cu:k.cu", "--source takes FILE:PATH")]
    [InlineData("--source|k.cu", "--source takes FILE:PATH")]
    [InlineData("--source|k.cu:", "--source takes FILE:PATH")]
    [InlineData("--variant|", "--variant takes a name")]
    [InlineData("--variant|-x", "--variant takes a name")]
    [InlineData("--variant|a|--variant|b|--variant|c|--variant|d|--variant|e|--variant|f|--variant|g|--variant|h|--variant|i", "at most 8 variants")]
    [InlineData("--variant|a|--define|missing.cu:X=1", "--define takes FILE:MACRO[=VALUE]")]
    [InlineData("--define|k.cu:1X", "--define takes FILE:MACRO[=VALUE]")]
    [InlineData("--rounds|0", "--rounds takes a whole number")]
    public void Bad_options_stop_it_before_any_profile_runs(string options, string message)
    {
        using var host = Host();

        var (exit, _, stderr) = Run(host, options.Split('|'));

        Assert.Equal(2, exit);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(host.Sub("dotnet/calls.log")));
    }
}
