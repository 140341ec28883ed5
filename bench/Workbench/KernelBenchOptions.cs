using AutoResearch.Data;
using AutoResearch.Native;

namespace AutoResearch.Bench.Workbench;

/// <summary>
/// What the kernel benchmarks run: which kernel folders ("current" and, for a before/after table, "before"), the mode (short:
/// a quick look; full: numbers to quote) and which named model configurations. Read from our own command-line options, which
/// <see cref="Parse"/> takes out of the arguments before BenchmarkDotNet sees the rest (its own <c>--filter</c> among them), and
/// from environment variables (a command-line option wins):
/// <list type="table">
/// <item><term><c>--kernels DIR</c>, AUTORESEARCH_BENCH_KERNELS</term><description>the "current" kernel folder (default: the
/// kernels/ shipped beside the binaries)</description></item>
/// <item><term><c>--before DIR</c>, AUTORESEARCH_BENCH_BEFORE</term><description>a second kernel folder, e.g. another commit's
/// (<c>git archive COMMIT kernels | tar -x -C /tmp/before</c> gives /tmp/before/kernels); every benchmark then runs on both,
/// side by side in one table (the Kernels column)</description></item>
/// <item><term><c>--short</c> / <c>--full</c>, AUTORESEARCH_BENCH_MODE</term><description>short: the baseline configuration only,
/// 1 warm-up and 3 timed runs; full (the default): every configuration of each family, 3 warm-ups and 10 timed runs</description></item>
/// <item><term><c>--configs a,b</c>, AUTORESEARCH_BENCH_CONFIGS</term><description>only these named configurations
/// (<see cref="BenchConfigs"/>; a family that varies with none of them runs its baseline)</description></item>
/// <item><term><c>--cubins DIR</c></term><description>where compiled kernels are cached (default: the project's kernel
/// cache; cubins are keyed by their source, so two folders never share one)</description></item>
/// </list>
/// The benchmarks run in this process (BenchmarkDotNet's in-process toolchain), so they read <see cref="Current"/>.
/// </summary>
public sealed record KernelBenchOptions
{
    public const string KernelsVariable = "AUTORESEARCH_BENCH_KERNELS";
    public const string BeforeVariable = "AUTORESEARCH_BENCH_BEFORE";
    public const string ModeVariable = "AUTORESEARCH_BENCH_MODE";
    public const string ConfigsVariable = "AUTORESEARCH_BENCH_CONFIGS";

    /// <summary>The value of the Kernels parameter for <see cref="CurrentKernels"/>.</summary>
    public const string CurrentVersion = "current";

    /// <summary>The value of the Kernels parameter for <see cref="BeforeKernels"/>.</summary>
    public const string BeforeVersion = "before";

    /// <summary>The options of this process (set by Program before BenchmarkDotNet starts).</summary>
    public static KernelBenchOptions Current { get; set; } = new();

    /// <summary>The kernel folder under test.</summary>
    public string CurrentKernels { get; init; } = KernelCache.DefaultKernelDirectory;

    /// <summary>A second kernel folder to compare with, or null.</summary>
    public string? BeforeKernels { get; init; }

    /// <summary>Short mode: the baseline only, fewer runs.</summary>
    public bool Short { get; init; }

    /// <summary>The configurations asked for by name, or null for each family's own list.</summary>
    public IReadOnlyList<string>? Configs { get; init; }

    /// <summary>The cubin cache folder.</summary>
    public string CubinDirectory { get; init; } = CachePaths.Default().Kernels;

    /// <summary>Untimed runs before the timed ones.</summary>
    public int WarmupCount => Short ? 1 : 3;

    /// <summary>Timed runs; the device time reported is their median.</summary>
    public int IterationCount => Short ? 3 : 10;

    /// <summary>The values of every benchmark's Kernels parameter.</summary>
    public IReadOnlyList<string> KernelVersions => BeforeKernels is null ? [CurrentVersion] : [CurrentVersion, BeforeVersion];

    /// <summary>The folder a Kernels parameter value names.</summary>
    public string KernelDirectory(string version) => version switch
    {
        CurrentVersion => CurrentKernels,
        BeforeVersion => BeforeKernels ?? throw new InvalidOperationException("no 'before' kernel folder was given (--before DIR or " + BeforeVariable + ")"),
        _ => throw new ArgumentException($"unknown kernel version '{version}': expected {CurrentVersion} or {BeforeVersion}", nameof(version)),
    };

    /// <summary>
    /// The configurations a family runs: its own list (<paramref name="family"/>, the baseline first) in full mode, the baseline
    /// in short mode, or the family's members of <see cref="Configs"/> when given (the baseline when none of them is).
    /// </summary>
    public IReadOnlyList<string> ConfigsFor(params string[] family)
    {
        ArgumentNullException.ThrowIfNull(family);
        if (family.Length == 0)
            throw new ArgumentException("a family runs at least one configuration", nameof(family));
        if (Configs is not null)
        {
            var chosen = family.Where(Configs.Contains).ToArray();
            return chosen.Length > 0 ? chosen : [family[0]];
        }
        return Short ? [family[0]] : family;
    }

    /// <summary>
    /// Takes our options out of <paramref name="args"/> and returns them with the arguments left for BenchmarkDotNet;
    /// <paramref name="environment"/> reads a variable (null when unset). Errors say what was wrong and how to fix it.
    /// </summary>
    public static (KernelBenchOptions Options, string[] BenchmarkArgs) Parse(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(environment);
        string? Env(string name) => string.IsNullOrWhiteSpace(environment(name)) ? null : environment(name)!.Trim();
        string? kernels = Env(KernelsVariable), before = Env(BeforeVariable), configs = Env(ConfigsVariable), cubins = null;
        bool? isShort = Env(ModeVariable) switch
        {
            null => null,
            var m when m.Equals("short", StringComparison.OrdinalIgnoreCase) => true,
            var m when m.Equals("full", StringComparison.OrdinalIgnoreCase) => false,
            var m => throw new ArgumentException($"{ModeVariable}={m}: expected short or full"),
        };
        var rest = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string Value()
            {
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new ArgumentException($"{args[i]} needs a value, e.g. {args[i]} {Example(args[i])}");
                return args[++i];
            }
            switch (args[i])
            {
                case "--kernels":
                    kernels = Value();
                    break;
                case "--before":
                    before = Value();
                    break;
                case "--configs":
                    configs = Value();
                    break;
                case "--cubins":
                    cubins = Value();
                    break;
                case "--short":
                    isShort = true;
                    break;
                case "--full":
                    isShort = false;
                    break;
                default:
                    rest.Add(args[i]);
                    break;
            }
        }
        var options = new KernelBenchOptions
        {
            CurrentKernels = kernels is null ? KernelCache.DefaultKernelDirectory : ExistingKernelFolder(kernels, "--kernels"),
            BeforeKernels = before is null ? null : ExistingKernelFolder(before, "--before"),
            Short = isShort ?? false,
            Configs = configs is null ? null : ParseConfigs(configs),
            CubinDirectory = cubins is null ? CachePaths.Default().Kernels : Path.GetFullPath(cubins),
        };
        return (options, rest.ToArray());
    }

    private static string Example(string option) => option switch
    {
        "--configs" => "baseline,head64",
        "--cubins" => "/tmp/cubins",
        _ => "/tmp/before/kernels",
    };

    /// <summary>A folder holding .cu files (a kernels/ folder); a folder whose kernels/ subfolder holds them is taken too.</summary>
    private static string ExistingKernelFolder(string path, string option)
    {
        var full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
            throw new ArgumentException($"{option} {path}: no such folder (give a folder of .cu files, e.g. one made by `git archive COMMIT kernels | tar -x -C DIR`, then DIR/kernels)");
        if (Directory.GetFiles(full, "*.cu").Length > 0)
            return full;
        var nested = Path.Combine(full, "kernels");
        if (Directory.Exists(nested) && Directory.GetFiles(nested, "*.cu").Length > 0)
            return nested;
        throw new ArgumentException($"{option} {path}: the folder holds no .cu files (nor does a kernels/ folder inside it)");
    }

    private static string[] ParseConfigs(string text)
    {
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Length == 0)
            throw new ArgumentException($"--configs '{text}': expected one or more names separated by commas ({string.Join(", ", BenchConfigs.Names)})");
        foreach (var name in names)
        {
            if (!BenchConfigs.Names.Contains(name))
                throw new ArgumentException($"--configs: unknown configuration '{name}'; the configurations are {string.Join(", ", BenchConfigs.Names)} (bench --list-configs shows their knobs)");
        }
        return names;
    }
}
