using AutoResearch.Bench.Workbench;
using AutoResearch.Native;
using Xunit;

namespace AutoResearch.Bench.Tests;

/// <summary>The kernel benchmarks' own options: taken out of the arguments before BenchmarkDotNet sees them, from the environment too.</summary>
public class KernelBenchOptionsTests
{
    private static Func<string, string?> Environment(params (string Name, string Value)[] variables)
        => name => variables.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void Without_options_it_runs_the_shipped_kernels_in_full_mode_and_passes_every_argument_on()
    {
        var (options, rest) = KernelBenchOptions.Parse(["--filter", "*RmsNorm*", "--job", "dry"], Environment());
        Assert.Equal(KernelCache.DefaultKernelDirectory, options.CurrentKernels);
        Assert.Null(options.BeforeKernels);
        Assert.False(options.Short);
        Assert.Null(options.Configs);
        Assert.Equal([KernelBenchOptions.CurrentVersion], options.KernelVersions);
        Assert.Equal((3, 10), (options.WarmupCount, options.IterationCount));
        Assert.Equal(["--filter", "*RmsNorm*", "--job", "dry"], rest);
    }

    [Fact]
    public void Short_mode_takes_fewer_runs_and_the_baseline_only()
    {
        var (options, rest) = KernelBenchOptions.Parse(["--short", "--filter", "*Flash*"], Environment());
        Assert.True(options.Short);
        Assert.Equal((1, 3), (options.WarmupCount, options.IterationCount));
        Assert.Equal(["baseline"], options.ConfigsFor("baseline", "head64", "gqa2"));
        Assert.Equal(["--filter", "*Flash*"], rest);
        Assert.False(KernelBenchOptions.Parse(["--short", "--full"], Environment()).Options.Short);
    }

    [Fact]
    public void A_before_folder_adds_a_second_kernel_version_beside_the_current_one()
    {
        using var current = new KernelFolder("rmsnorm.cu");
        using var before = new KernelFolder("kernels/rmsnorm.cu"); // what `git archive COMMIT kernels | tar -x -C DIR` leaves
        var (options, rest) = KernelBenchOptions.Parse(["--kernels", current.Path, "--before", before.Path, "--filter", "*"], Environment());
        Assert.Equal(["current", "before"], options.KernelVersions);
        Assert.Equal(current.Path, options.KernelDirectory("current"));
        Assert.Equal(before.Sub("kernels"), options.KernelDirectory("before"));
        Assert.Equal(["--filter", "*"], rest);
    }

    [Fact]
    public void The_environment_names_the_folders_mode_and_configurations_and_the_command_line_wins()
    {
        using var fromEnvironment = new KernelFolder("a.cu");
        using var fromArguments = new KernelFolder("b.cu");
        var env = Environment(
            (KernelBenchOptions.KernelsVariable, fromEnvironment.Path),
            (KernelBenchOptions.BeforeVariable, fromEnvironment.Path),
            (KernelBenchOptions.ModeVariable, "short"),
            (KernelBenchOptions.ConfigsVariable, "head64"));
        var (options, _) = KernelBenchOptions.Parse([], env);
        Assert.Equal(fromEnvironment.Path, options.CurrentKernels);
        Assert.Equal(fromEnvironment.Path, options.BeforeKernels);
        Assert.True(options.Short);
        Assert.Equal(["head64"], options.Configs);

        var (overridden, _) = KernelBenchOptions.Parse(["--kernels", fromArguments.Path, "--full", "--configs", "width1024"], env);
        Assert.Equal(fromArguments.Path, overridden.CurrentKernels);
        Assert.False(overridden.Short);
        Assert.Equal(["width1024"], overridden.Configs);
    }

    [Fact]
    public void Named_configurations_select_within_each_family_and_a_family_without_them_runs_its_baseline()
    {
        var (options, _) = KernelBenchOptions.Parse(["--configs", "head64, width2048"], Environment());
        Assert.Equal(["head64"], options.ConfigsFor("baseline", "head64", "gqa2"));
        Assert.Equal(["width2048"], options.ConfigsFor("baseline", "width1024", "width2048"));
        Assert.Equal(["baseline"], options.ConfigsFor("baseline", "nocap"));
        Assert.Equal(["baseline", "head64", "gqa2"], new KernelBenchOptions().ConfigsFor("baseline", "head64", "gqa2"));
    }

    [Theory]
    [InlineData("--kernels")]
    [InlineData("--before")]
    [InlineData("--configs")]
    [InlineData("--cubins")]
    public void An_option_without_its_value_is_an_error_with_an_example(string option)
    {
        var e = Assert.Throws<ArgumentException>(() => KernelBenchOptions.Parse([option, "--filter", "*"], Environment()));
        Assert.Contains($"{option} needs a value, e.g. {option} ", e.Message);
        Assert.Throws<ArgumentException>(() => KernelBenchOptions.Parse([option], Environment()));
    }

    [Fact]
    public void A_missing_or_empty_kernel_folder_is_an_error_that_says_how_to_make_one()
    {
        var missing = Path.Combine(Path.GetTempPath(), "autoresearch-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<ArgumentException>(() => KernelBenchOptions.Parse(["--before", missing], Environment()));
        Assert.Contains("no such folder", e.Message);
        Assert.Contains("git archive", e.Message);
        using var empty = new KernelFolder("notes.txt");
        var noKernels = Assert.Throws<ArgumentException>(() => KernelBenchOptions.Parse(["--kernels", empty.Path], Environment()));
        Assert.Contains("holds no .cu files", noKernels.Message);
    }

    [Fact]
    public void An_unknown_configuration_or_mode_is_an_error_naming_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelBenchOptions.Parse(["--configs", "baseline,head32"], Environment()));
        Assert.Contains("unknown configuration 'head32'", e.Message);
        Assert.Contains("head64", e.Message);
        var mode = Assert.Throws<ArgumentException>(() => KernelBenchOptions.Parse([], Environment((KernelBenchOptions.ModeVariable, "quick"))));
        Assert.Contains("expected short or full", mode.Message);
    }

    [Fact]
    public void The_before_version_needs_a_before_folder()
    {
        var e = Assert.Throws<InvalidOperationException>(() => new KernelBenchOptions().KernelDirectory("before"));
        Assert.Contains("--before", e.Message);
        Assert.Throws<ArgumentException>(() => new KernelBenchOptions().KernelDirectory("after"));
    }
}
