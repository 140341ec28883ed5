using System.Collections.Concurrent;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Native.Tests;

/// <summary>The cubin store on the CPU: the ahead compile's bookkeeping with a stand-in worker, then real NVRTC where it loads.</summary>
public class CubinStoreTests
{
    private static readonly byte[] ElfMagic = [0x7F, (byte)'E', (byte)'L', (byte)'F'];

    /// <summary>A kernel folder holding <paramref name="files"/> (name, text) and an empty cache folder.</summary>
    private static (string Kernels, string Cache) Folders(params (string Name, string Text)[] files)
    {
        var kernels = TestGpu.NewTempDirectory("cubin-src");
        foreach (var (name, text) in files)
            File.WriteAllText(Path.Combine(kernels, name), text);
        return (kernels, TestGpu.NewTempDirectory("cubin-cache"));
    }

    /// <summary>A store whose NVRTC version is given, so no NVRTC is loaded: for workers that do not compile.</summary>
    private static CubinStore Bookkeeping(string kernels, string cache) => new("sm_90a", kernels, cache, (13, 0));

    private static void WriteStandIn(KernelCompileJob job) => CubinStore.WriteAtomically(job.CubinPath, [1, 2, 3, (byte)job.FileName[0]]);

    [Fact]
    public async Task Compile_ahead_compiles_each_missing_file_once_and_skips_the_cached_ones()
    {
        var (kernels, cache) = Folders(("a.cu", "// a"), ("b.cu", "// b"), ("c.cu", "// c"));
        var store = Bookkeeping(kernels, cache);
        WriteStandIn(store.Job(new KernelSource("c.cu"))); // already cached
        var compiled = new ConcurrentBag<string>();
        void Worker(KernelCompileJob job, CancellationToken cancel)
        {
            compiled.Add(job.FileName + string.Concat(job.Options.Where(o => o.StartsWith("-D", StringComparison.Ordinal))));
            WriteStandIn(job);
        }

        var failures = await store.CompileAhead(
            [new("a.cu"), new("b.cu"), new("a.cu"), new("c.cu"), new("b.cu", ["-DX=1"]), new("b.cu", ["-DX=1"])], Worker, cancel: TestContext.Current.CancellationToken);

        Assert.Empty(failures);
        Assert.Equal(["a.cu", "b.cu", "b.cu-DX=1"], compiled.Order(StringComparer.Ordinal));
        Assert.Equal(3, store.CompiledAhead);
        Assert.Equal(0, store.Compiled);
        foreach (var source in new KernelSource[] { new("a.cu"), new("b.cu"), new("b.cu", ["-DX=1"]) })
        {
            var job = store.Job(source);
            Assert.True(File.Exists(job.CubinPath), source.ToString());
            Assert.True(store.WaitForAhead(job.Key, out var failure));
            Assert.Null(failure);
        }
        Assert.False(store.WaitForAhead(store.Job(new KernelSource("c.cu")).Key, out _)); // was on disk: never started

        // Asked again (same process or a later one): everything is on disk, nothing starts.
        compiled.Clear();
        Assert.Empty(await store.CompileAhead([new("a.cu"), new("b.cu")], Worker, cancel: TestContext.Current.CancellationToken));
        Assert.Empty(await Bookkeeping(kernels, cache).CompileAhead([new("a.cu"), new("b.cu"), new("c.cu")], Worker, cancel: TestContext.Current.CancellationToken));
        Assert.Empty(compiled);
    }

    [Fact]
    public async Task Each_ahead_compile_is_timed_under_its_file_and_defines()
    {
        var (kernels, cache) = Folders(("a.cu", "// a"), ("b.cu", "// b"));
        var store = Bookkeeping(kernels, cache);
        void Worker(KernelCompileJob job, CancellationToken cancel)
        {
            Thread.Sleep(job.Options.Contains("-DSLOW") ? 300 : 20);
            WriteStandIn(job);
        }

        Assert.Empty(await store.CompileAhead([new("a.cu"), new("b.cu", ["-DSLOW", "-DX=2"])], Worker, cancel: TestContext.Current.CancellationToken));

        var times = store.AheadTimes.OrderBy(t => t.Label, StringComparer.Ordinal).ToList();
        Assert.Equal(["a.cu", "b.cu -DSLOW -DX=2"], times.Select(t => t.Label)); // the base options (architecture, include paths) left out
        Assert.True(times[0].Elapsed.TotalMilliseconds >= 20, $"{times[0].Elapsed}");   // each from its start to its cubin on disk
        Assert.True(times[1].Elapsed.TotalMilliseconds >= 300, $"{times[1].Elapsed}");
    }

    [Fact]
    public async Task At_most_the_given_number_compile_at_once_the_longest_sources_first()
    {
        var files = Enumerable.Range(0, 6).Select(i => ($"k{i}.cu", "//" + new string('x', 10 * ((i * 7) % 6 + 1)))).ToArray();
        var (kernels, cache) = Folders(files);
        int running = 0, most = 0;
        var order = new ConcurrentQueue<int>();
        void Worker(KernelCompileJob job, CancellationToken cancel)
        {
            order.Enqueue(job.Source.Length);
            int now = Interlocked.Increment(ref running);
            InterlockedMax(ref most, now);
            Thread.Sleep(60);
            Interlocked.Decrement(ref running);
            WriteStandIn(job);
        }

        var sources = files.Select(f => new KernelSource(f.Item1)).ToList();
        Assert.Empty(await Bookkeeping(kernels, cache).CompileAhead(sources, Worker, parallelism: 2, cancel: TestContext.Current.CancellationToken));
        Assert.Equal(2, most);

        // One at a time: the order is the sources' lengths, longest first (the long compiles start before the short ones).
        var (kernels1, cache1) = Folders(files);
        order.Clear();
        most = 0;
        Assert.Empty(await Bookkeeping(kernels1, cache1).CompileAhead(sources, Worker, parallelism: 1, cancel: TestContext.Current.CancellationToken));
        Assert.Equal(1, most);
        Assert.Equal(order.OrderDescending(), order);
        Assert.Equal(6, order.Distinct().Count());
    }

    [Fact]
    public async Task Cancelled_compiles_are_not_counted_as_failures()
    {
        var (kernels, cache) = Folders(("a.cu", "// a"), ("b.cu", "// bb"));
        var store = Bookkeeping(kernels, cache);
        using var stop = new CancellationTokenSource();
        void Worker(KernelCompileJob job, CancellationToken cancel)
        {
            stop.Cancel(); // the cache is disposed while the first compile runs
            cancel.ThrowIfCancellationRequested();
            WriteStandIn(job);
        }

        var failures = await store.CompileAhead([new("a.cu"), new("b.cu")], Worker, parallelism: 1, cancel: stop.Token);

        Assert.Equal(2, failures.Count);
        Assert.All(failures, f => Assert.IsAssignableFrom<OperationCanceledException>(f));
        Assert.Equal(0, store.AheadFailures);
        Assert.Equal(0, store.CompiledAhead);
    }

    [Fact]
    public void Temporary_cubins_of_processes_that_no_longer_run_are_removed_others_kept()
    {
        var (kernels, cache) = Folders(("a.cu", "// a"));
        Directory.CreateDirectory(cache);
        // A process id no system hands out (above the Linux maximum of 2^22), this process's own, and one that is not a number.
        var dead = Path.Combine(cache, $"a-sm_90a-0123.cubin.{(1 << 22) + 17}.0a1b.tmp");
        var mine = Path.Combine(cache, $"a-sm_90a-0123.cubin.{Environment.ProcessId}.0a1b.tmp");
        var odd = Path.Combine(cache, "a-sm_90a-0123.cubin.x.0a1b.tmp");
        var cubin = Path.Combine(cache, "a-sm_90a-0123.cubin");
        foreach (var f in new[] { dead, mine, odd, cubin })
            File.WriteAllBytes(f, [1]);

        _ = Bookkeeping(kernels, cache);

        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(mine));
        Assert.True(File.Exists(odd));
        Assert.True(File.Exists(cubin));
    }

    [Fact]
    public void A_write_that_cannot_be_renamed_into_place_leaves_no_temporary_file()
    {
        var (_, cache) = Folders(("a.cu", "// a"));
        var target = Directory.CreateDirectory(Path.Combine(cache, "taken.cubin")).FullName; // a folder where the file should go

        Assert.ThrowsAny<IOException>(() => CubinStore.WriteAtomically(target, [1, 2, 3]));

        Assert.Empty(Directory.GetFiles(cache, "*.tmp"));
        Assert.True(Directory.Exists(target));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    [Fact]
    public async Task A_failed_compile_is_returned_not_thrown_and_leaves_no_cubin()
    {
        var (kernels, cache) = Folders(("good.cu", "// good"), ("bad.cu", "// bad"), ("silent.cu", "// silent"));
        var store = Bookkeeping(kernels, cache);
        void Worker(KernelCompileJob job, CancellationToken cancel)
        {
            if (job.FileName == "bad.cu")
                throw new InvalidOperationException("bad.cu(1): error: stand-in failure");
            if (job.FileName == "good.cu")
                WriteStandIn(job);
            // silent.cu: returns without writing anything
        }

        var task = store.CompileAhead([new("good.cu"), new("bad.cu"), new("silent.cu")], Worker, cancel: TestContext.Current.CancellationToken);
        var failures = await task;

        Assert.Equal(TaskStatus.RanToCompletion, task.Status);
        Assert.Equal(2, failures.Count);
        Assert.Contains(failures, f => f.Message.Contains("stand-in failure", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Message.Contains("silent.cu", StringComparison.Ordinal) && f.Message.Contains("without writing", StringComparison.Ordinal));
        Assert.Equal(1, store.CompiledAhead);
        Assert.Equal(2, store.AheadFailures);
        var bad = store.Job(new KernelSource("bad.cu"));
        Assert.True(store.WaitForAhead(bad.Key, out var failure));
        Assert.NotNull(failure);
        Assert.False(File.Exists(bad.CubinPath));
        Assert.Empty(Directory.GetFiles(cache, "*.tmp"));
    }

    [Fact]
    public void A_missing_source_names_its_path()
    {
        var (kernels, cache) = Folders();
        var e = Assert.Throws<FileNotFoundException>(() => Bookkeeping(kernels, cache).Job(new KernelSource("nowhere.cu")));
        Assert.Contains(Path.Combine(Path.GetFullPath(kernels), "nowhere.cu"), e.Message, StringComparison.Ordinal);
    }

    private const string AddSource = "extern \"C\" __global__ void add(const float* a, float* b, int n)\n"
        + "{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) b[i] += a[i] * SCALE; }\n";

    [NvrtcFact]
    public async Task Nvrtc_compiles_ahead_in_threads_to_cubins_and_a_broken_source_fails_with_its_log()
    {
        var (kernels, cache) = Folders(("add.cu", AddSource), ("broken.cu", "extern \"C\" __global__ void broken() { undeclared_name = 1; }\n"));
        var store = new CubinStore(NvrtcFactAttribute.PortableArchitecture, kernels, cache);
        var two = new KernelSource("add.cu", ["-DSCALE=2.0f"]);
        var three = new KernelSource("add.cu", ["-DSCALE=3.0f"]);

        var failures = await store.CompileAhead([two, three, new("broken.cu")], cancel: TestContext.Current.CancellationToken);

        Assert.Equal(2, store.CompiledAhead);
        var failure = Assert.Single(failures);
        var log = Assert.IsType<NvrtcCompileException>(failure);
        Assert.Contains("undeclared_name", log.Log, StringComparison.Ordinal);
        var cubins = new[] { two, three }.Select(s => File.ReadAllBytes(store.Job(s).CubinPath)).ToList();
        Assert.All(cubins, c => Assert.Equal(ElfMagic, c.Take(4)));
        Assert.NotEqual(cubins[0], cubins[1]); // the options reached NVRTC: the constants differ

        // The same file compiled whole by the caller (into another cache) gives the same cubin as the ahead compile.
        var alone = new CubinStore(NvrtcFactAttribute.PortableArchitecture, kernels, TestGpu.NewTempDirectory("cubin-cache"));
        Assert.Equal(cubins[0], alone.Compile(alone.Job(two)));
        Assert.Equal(1, alone.Compiled);
        Assert.Equal(0, alone.CompiledAhead);
    }
}
