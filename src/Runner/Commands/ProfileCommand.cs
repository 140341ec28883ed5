using System.CommandLine;
using System.Globalization;
using AutoResearch.Data;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim.Gpu;
using AutoResearch.Runner.Experiment;
using AutoResearch.Runner.Training;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch profile`: times one training micro-step (forward, loss, backward) and one optimizer step of the experiment's
/// model (the knobs of <see cref="Hyperparameters"/>, with --set overrides) on random tokens with device events, op by op,
/// against the rooflines (bf16 GEMM ~800 TFLOP/s on an H100 or H200; memory: a device-to-device copy timed on this device first, ~3 TB/s on an H100, ~4.3 on an H200), and reports the
/// peak device memory and, where NVML reads the GPU's energy counter, the energy of a whole step and the SM clock during it
/// (near the power limit the clock falls). This is the benchmark behind the model's and optimizer's performance figures.
/// </summary>
public static class ProfileCommand
{
    private const double GemmRoofline = 800e12;

    public static Command Create()
    {
        var batch = new Option<int>("--device-batch") { Description = "Rows per micro-batch (B; the knob DeviceBatchSize)", DefaultValueFactory = _ => Hyperparameters.Default.DeviceBatchSize };
        var depth = new Option<int>("--depth") { Description = "Layers (the knob Depth)", DefaultValueFactory = _ => Hyperparameters.Default.Depth };
        // Checked while parsing: 0 timed steps would fail only after the kernels compiled and the warm-ups ran (no median to report).
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per row (T)", DefaultValueFactory = _ => 2048 }.AtLeastOne();
        var steps = new Option<int>("--steps") { Description = "Timed steps (after 2 warm-ups); the table shows the median step", DefaultValueFactory = _ => 5 }.AtLeastOne();
        var naive = new Option<bool>("--naive-attention") { Description = "Use the one-warp-per-query attention kernels (slow; the oracle)" };
        var candidates = new Option<int>("--gemm-candidates")
        {
            Description = "cuBLASLt algorithms timed per GEMM shape on first use, the fastest kept (1: the heuristic's first choice)",
            DefaultValueFactory = _ => GpuTrainer.GemmCandidates,
        };
        var headChunk = new Option<int>("--head-chunk-rows")
        {
            Description = "Rows of logits the head computes at a time (lm_head, soft cap and cross-entropy per chunk)",
            DefaultValueFactory = _ => GpuGpt.DefaultHeadChunkRows,
        };
        var zipf = new Option<bool>("--zipf-tokens")
        {
            Description = "Draw the tokens from a Zipf law (p ∝ 1/rank, like text) instead of uniformly: frequent tokens make the embedding gradients' scatter-adds collide",
        };
        var cublasMlp = new Option<bool>("--cublas-mlp")
        {
            Description = "Run the MLP on cuBLAS GEMMs plus separate activation passes instead of our GEMMs with the activation in the epilogue",
        };
        var cublasQk = new Option<bool>("--cublas-qk")
        {
            Description = "Run the q and k projections on cuBLAS plus a rotary + QK-norm pass instead of our GEMM with them in the epilogue",
        };
        var resources = new Option<bool>("--resources")
        {
            Description = "Also list every kernel loaded with its registers a thread, local memory (spills) and static shared memory, as compiled for this GPU",
        };
        var fixedWeights = new Option<bool>("--fixed-weights")
        {
            Description = "Undo every optimizer step (the masters put back from a copy on the host, outside the timed parts), so each step runs "
                + "on the initial weights. For timing-only kernel variants whose gradients are wrong: their updates would change the "
                + "data every kernel sees, and with it the GPU's power draw and clocks. The optimizer step is still timed. The initial weights "
                + "draw less power (the output projections start at zero): compare only with other --fixed-weights figures.",
        };
        var tsv = new Option<FileInfo?>("--tsv")
        {
            Description = "Also write the op table and the step figures as tab-separated values to this file (for scripts comparing builds: bench/device/ab-profile.sh)",
        };
        var set = KnobOptions.CreateSetOption();
        candidates.AtLeastOne();
        headChunk.AtLeastOne();
        var command = new Command("profile", "Time a training micro-step and an optimizer step of the experiment's model op by op (GPU), with rooflines, peak memory and (NVML) the energy and SM clock of a step; "
            + "--set Name=Value profiles another shape (`autoresearch knobs` lists the knobs).")
        {
            batch, depth, seqLen, steps, naive, candidates, headChunk, zipf, cublasMlp, cublasQk, resources, fixedWeights, tsv, set,
        };
        command.SetAction(parse =>
        {
            var h = KnobOptions.ResolveDepthAndBatch(parse, depth, batch, set);
            string? tsvPath = parse.GetValue(tsv)?.FullName;
            if (tsvPath is not null)
                CheckTsvPath(tsvPath);
            return Run(h, parse.GetValue(seqLen), parse.GetValue(steps), parse.GetValue(naive), parse.GetValue(candidates), parse.GetValue(headChunk),
                parse.GetValue(zipf), parse.GetValue(cublasMlp), parse.GetValue(cublasQk), parse.GetValue(resources),
                parse.GetValue(fixedWeights), tsvPath);
        });
        return command;
    }

    /// <summary>Refuses, before the device is touched, a --tsv path that could not be written at the end (a folder, a folder
    /// that does not exist or cannot be written in): the --save check of `train`, as a usage error.</summary>
    public static void CheckTsvPath(string path)
    {
        try
        {
            TrainPreflight.CheckSavePath(path, "--tsv", "profile.tsv");
        }
        catch (IOException e)
        {
            throw new ArgumentException(e.Message, e);
        }
    }

    private static int Run(Hyperparameters h, int seqLen, int steps, bool naive, int gemmCandidates, int headChunkRows, bool zipfTokens, bool cublasMlp,
        bool cublasQk, bool listResources, bool fixedWeights, string? tsvPath)
    {
        // The experiment's shape and optimizer from the knobs, checked before the device is touched.
        var shape = h.Shape(ExperimentConstants.VocabSize, seqLen);
        var settings = h.Optimizer(shape.ModelDim);
        int batch = h.DeviceBatchSize;
        using var device = CudaDevice.Open(0);
        if (!naive)
            GpuGpt.RequireFlashDevice(device.Properties);
        using var stream = new CudaStream(device);
        using var blas = new Blas(device, stream) { TuneCandidates = gemmCandidates };
        using var kernels = new KernelCache(device, KernelCache.DefaultKernelDirectory, CachePaths.Default().Kernels);
        _ = kernels.CompileAhead([.. GpuGpt.KernelSources(device.Properties, shape, batch, fusedMlp: !cublasMlp, fusedQk: !cublasQk), .. MuonAdamWGpu.KernelSources,
            .. (naive ? [AttentionNaive.Source(shape.HeadDim)] : Array.Empty<KernelSource>())], KernelCompileProcesses.Worker());
        // Timed before the model exists, its 2 GB freed again, so it neither competes for memory nor counts in the peak.
        var copy = CopyThroughput.Measure(device, stream);
        device.Memory.ResetPeak();
        double bandwidthRoofline = copy.TerabytesPerSecond * 1e12;
        IAttentionKernels attention = naive ? new AttentionNaive(kernels, shape.HeadDim) : new FlashAttention(kernels, shape.HeadDim);
        using var model = new GpuGpt(device, stream, blas, kernels, shape, batch, attention, headChunkRows, fusedMlp: !cublasMlp, recomputeMlp: h.RecomputesMlp,
            fusedQk: !cublasQk);
        model.Parameters.InitialiseLikeSpec(h.Seed);
        model.Parameters.RefreshBf16(model.Elementwise, stream);
        using var optimizer = new MuonAdamWGpu(device, stream, blas, kernels, model.Parameters, settings);
        // --fixed-weights: the initial masters, put back after each optimizer step (outside the timed parts).
        float[]? initialMasters = fixedWeights ? model.Parameters.DownloadMasters() : null;
        var random = new Random(1);
        int n = batch * seqLen;
        var inputs = new int[n];
        var targets = new int[n];
        Func<int> draw = zipfTokens ? ZipfSampler(random, shape.VocabSize - 4) : () => random.Next(shape.VocabSize - 4);
        for (int i = 0; i < n; i++)
        {
            inputs[i] = draw();
            targets[i] = draw();
        }
        model.Upload(inputs, targets);
        Console.WriteLine($"shape: {shape.Describe()}");
        if (Knobs.Changed(h) is { Count: > 0 } changed)
            Console.WriteLine($"knobs: {string.Join(' ', changed)}");
        if (fixedWeights)
            Console.WriteLine("weights: fixed (--fixed-weights: every optimizer step is undone, so each step runs on the initial weights)");
        Console.WriteLine($"model: {model.Parameters.Count / 1e6:F1} M parameters; micro-batch {batch} × {seqLen} = {n} tokens ({(zipfTokens ? "Zipf" : "uniform")})");
        Console.WriteLine("paths:");
        foreach (var line in PathLines(model.Paths))
            Console.WriteLine("  " + line);
        Console.WriteLine($"rooflines: bf16 GEMM {GemmRoofline / 1e12:F0} TFLOP/s; memory {copy.TerabytesPerSecond:F2} TB/s "
            + $"(a {copy.Bytes >> 20} MiB device-to-device copy here, median {copy.MedianMilliseconds:F3} ms of {copy.Iterations})");

        using var start = new CudaEvent(device);
        using var mid = new CudaEvent(device);
        using var end = new CudaEvent(device);
        var stepMs = new List<double>();
        var optMs = new List<double>();
        var wholeMs = new List<double>();
        IReadOnlyList<StreamProfiler.Row>? breakdown = null;
        int accumulation = Math.Max(1, h.TotalBatchSize / n);
        // The energy of each timed whole step and the SM clock during it (NVML; optional): near the power limit the clocks
        // fall, and the energy of a step decides its time more than its time at a fixed clock does.
        using var power = GpuPowerMonitor.TryOpen(device, out string? powerUnavailable);
        // Each round times the parts (one micro-step, then the optimizer step, by device events) and then one whole step as
        // `train` runs it, so that a drift of the clocks over the run (a GPU warming up, or near its power limit) falls on both
        // alike rather than on whichever is timed last.
        for (int s = -2; s < steps; s++)
        {
            model.Profiler.Enabled = s == steps - 1; // the last round's micro-step is also broken down op by op
            model.Parameters.ZeroGradients(stream);
            model.ResetLossSum();
            start.Record(stream);
            model.ForwardBackward(1f / n);
            mid.Record(stream);
            optimizer.Step(1f, 0.95f, 0.1f);
            end.Record(stream);
            float total = CudaEvent.ElapsedMilliseconds(start, end);
            if (s >= 0)
            {
                stepMs.Add(CudaEvent.ElapsedMilliseconds(start, mid));
                optMs.Add(total - stepMs[^1]);
            }
            if (model.Profiler.Enabled)
                breakdown = model.Profiler.Collect();
            model.Profiler.Enabled = false;
            if (initialMasters is not null)
                model.Parameters.RestoreMasters(initialMasters, model.Elementwise, stream);

            // The whole step as TrainingLoop runs it: the device synchronised, the clock started, the micro-steps with the next
            // batch uploaded between them, the optimizer queued, the next step's first batch uploaded, the loss read (the wait
            // for the device); host time. Against the parts, this is what the host adds.
            stream.Synchronize();
            if (s >= 0)
                power?.BeginWindow();
            var watch = System.Diagnostics.Stopwatch.StartNew();
            model.Parameters.ZeroGradients(stream);
            model.ResetLossSum();
            for (int micro = 0; micro < accumulation; micro++)
            {
                model.ForwardBackward(1f / (n * accumulation));
                if (micro + 1 < accumulation)
                    model.Upload(inputs, targets);
            }
            optimizer.Step(1f, 0.95f, 0.1f);
            model.Upload(inputs, targets);
            _ = model.ReadLossSum();
            if (s >= 0)
            {
                wholeMs.Add(watch.Elapsed.TotalMilliseconds);
                power?.EndWindow();
            }
            if (initialMasters is not null)
                model.Parameters.RestoreMasters(initialMasters, model.Elementwise, stream);
        }
        double median = EventTiming.Median(stepMs), optMedian = EventTiming.Median(optMs);
        double wholeMedian = EventTiming.Median(wholeMs), parts = accumulation * median + optMedian;
        if (blas.TuneLog.Count > 0)
        {
            Console.WriteLine();
            Console.WriteLine($"GEMM algorithms (M×N×K, ops: ms of each cuBLASLt candidate timed, the fastest kept):");
            foreach (var line in blas.TuneLog)
                Console.WriteLine("  " + line);
        }
        Console.WriteLine();
        Console.WriteLine($"{"op",-30} {"ms",9} {"share",7} {"calls",6} {"TFLOP/s",8} {"TB/s",6} {"roofline",9}");
        double profiled = breakdown!.Sum(r => r.Milliseconds);
        foreach (var r in breakdown!)
        {
            string tflops = r.Flops > 0 ? r.TeraflopsPerSecond.ToString("F0", CultureInfo.InvariantCulture) : "";
            string tbs = r.Bytes > 0 ? r.TerabytesPerSecond.ToString("F2", CultureInfo.InvariantCulture) : "";
            double fraction = r.Flops > 0 ? r.Flops / (r.Milliseconds * 1e-3) / GemmRoofline : r.Bytes / (r.Milliseconds * 1e-3) / bandwidthRoofline;
            Console.WriteLine($"{r.Name,-30} {r.Milliseconds,9:F2} {r.Milliseconds / profiled,7:P1} {r.Calls,6} {tflops,8} {tbs,6} {fraction,9:P0}");
        }
        double flopsPerToken = shape.FlopsPerToken();
        Console.WriteLine();
        Console.WriteLine($"micro-step (forward + loss + backward): median {median:F1} ms over {steps} steps (profiled step {profiled:F1} ms); "
            + $"{n / (median * 1e-3) / 1e6:F2} M tokens/s; MFU {flopsPerToken * n / (median * 1e-3) / 989.5e12:P1}");
        Console.WriteLine($"optimizer step: median {optMedian:F2} ms");
        Console.WriteLine($"whole step as train runs it ({accumulation} micro-steps and the optimizer, host clock): median {wholeMedian:F1} ms over {steps}; "
            + $"the parts ({accumulation} × micro-step + optimizer step) {parts:F1} ms: the host adds {wholeMedian / parts - 1:P1}");
        Console.WriteLine($"peak device memory (tracked): {device.Memory.PeakMegabytes:F1} MB");
        // A query that failed part way (power.Failure) leaves the measurement out rather than the profile.
        var powerSummary = power?.Summary();
        string? powerFailure = power is null ? powerUnavailable : power.Failure;
        if (powerFailure is not null)
            powerSummary = null;
        Console.WriteLine(powerSummary is null ? $"power: not measured ({powerFailure})" : $"power: {powerSummary.Describe("whole step")}");
        if (tsvPath is not null)
        {
            AtomicFile.WriteText(tsvPath, w => w.Write(ProfileTsv.Format(breakdown, median, optMedian, wholeMedian, device.Memory.PeakMegabytes,
                powerSummary)));
            Console.WriteLine($"table written to {tsvPath}");
        }
        var compiled = kernels.Resources();
        Console.WriteLine(KernelResourceReport.LocalMemoryLine(compiled));
        Console.WriteLine(KernelResourceReport.PerformanceNotesLine(kernels.PerformanceNotes(), kernels.LoadedWithoutLog()));
        if (listResources)
        {
            Console.WriteLine();
            foreach (var line in KernelResourceReport.Table(compiled))
                Console.WriteLine(line);
        }
        return 0;
    }

    /// <summary>The kernel paths one a line, "op: path", with why where an op is off its fast path.</summary>
    public static IEnumerable<string> PathLines(KernelPaths paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return paths.Rows().Select(r => $"{r.Op}: {r.Path}" + (r.Fast ? "" : $" (off the fast path: {r.Fallback})"));
    }

    /// <summary>Token ids 0..count−1 with P(id) ∝ 1/(id + 1).</summary>
    private static Func<int> ZipfSampler(Random random, int count)
    {
        var cumulative = new double[count];
        double sum = 0;
        for (int i = 0; i < count; i++)
            cumulative[i] = sum += 1.0 / (i + 1);
        return () =>
        {
            int index = Array.BinarySearch(cumulative, random.NextDouble() * sum);
            return Math.Min(index < 0 ? ~index : index, count - 1);
        };
    }
}
