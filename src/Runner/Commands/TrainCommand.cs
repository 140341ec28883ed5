using System.CommandLine;
using System.Diagnostics;
using AutoResearch.Data;
using AutoResearch.Data.Evaluation;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using OptimizerSettings = AutoResearch.Optim.OptimizerSettings;
using AutoResearch.Optim.Gpu;
using AutoResearch.Runner.Experiment;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch train`: the time-budgeted experiment of SPEC §7–9 on the GPU: gradient accumulation to the total batch, the
/// schedules, the first 11 steps uncounted, fast fail on NaN or loss &gt; 100, a one-line progress display, then the
/// evaluation on EVAL_TOKENS of the validation shard and the summary block.
/// </summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var budget = new Option<double>("--time-budget") { Description = "Training seconds counted after the 11 warm-up steps", DefaultValueFactory = _ => ExperimentConstants.TimeBudgetSeconds };
        var depth = new Option<int>("--depth") { Description = "Layers", DefaultValueFactory = _ => Hyperparameters.Default.Depth };
        var deviceBatch = new Option<int>("--device-batch") { Description = "Rows per micro-batch (lower it if the GPU runs out of memory)", DefaultValueFactory = _ => Hyperparameters.Default.DeviceBatchSize };
        var totalBatch = new Option<int>("--total-batch") { Description = "Tokens per optimizer step", DefaultValueFactory = _ => Hyperparameters.Default.TotalBatchSize };
        var evalTokens = new Option<long>("--eval-tokens") { Description = "Validation tokens scored at the end", DefaultValueFactory = _ => ExperimentConstants.EvalTokens };
        var cache = new Option<string?>("--cache") { Description = "Cache folder with data/ and tokenizer/ (see prepare)" };
        var save = new Option<string?>("--save") { Description = "Write the trained weights to this .safetensors file" };
        var device = new Option<string>("--device") { Description = "gpu (cpu training is not available yet)", DefaultValueFactory = _ => "gpu" };
        device.AcceptOnlyFromAmong("gpu", "cpu");
        var command = new Command("train", "Train for the time budget on the GPU, evaluate val_bpb and print the summary block.")
        {
            budget, depth, deviceBatch, totalBatch, evalTokens, cache, save, device,
        };
        command.SetAction((parse, token) =>
        {
            if (parse.GetValue(device) == "cpu")
                throw new NotSupportedException("--device cpu training is not available yet; it needs a GPU for now");
            var h = (Hyperparameters.Default with
            {
                Depth = parse.GetValue(depth),
                DeviceBatchSize = parse.GetValue(deviceBatch),
                TotalBatchSize = parse.GetValue(totalBatch),
            }).Validate();
            return Task.FromResult(Run(h, parse.GetValue(budget), parse.GetValue(evalTokens), CachePaths.From(parse.GetValue(cache)), parse.GetValue(save), token));
        });
        return command;
    }

    private static int Run(Hyperparameters h, double budgetSeconds, long evalTokens, CachePaths cache, string? savePath, CancellationToken cancel)
    {
        var total = Stopwatch.StartNew();
        int t = ExperimentConstants.MaxSeqLen, b = h.DeviceBatchSize;
        int tokensPerMicroBatch = b * t;
        int accumulation = TrainingClock.GradientAccumulationSteps(h.TotalBatchSize, h.DeviceBatchSize);
        var tokenizer = TokenizerFiles.Load(cache.Tokenizer);
        // Pre-tokenized shards: the first pass over a shard writes its ids, later passes and later runs read them.
        var tokenCache = new ShardTokenCache(cache.Tokens, tokenizer, TokenizerFiles.ContentHash(cache.Tokenizer));
        var (trainShards, validationShard) = ParquetShards.List(cache.Data);

        int count;
        try
        {
            count = CudaDevice.Count();
        }
        catch (NativeLibraryNotFoundException)
        {
            count = 0;
        }
        if (count == 0)
            throw new InvalidOperationException("no CUDA device found; use --device cpu for a tiny CPU run (not available yet) or run `autoresearch doctor`");
        using var gpu = CudaDevice.Open(0);
        using var stream = new CudaStream(gpu);
        using var blas = new Blas(gpu, stream);
        using var kernels = new KernelCache(gpu, KernelCache.DefaultKernelDirectory, cache.Kernels);
        var shape = ModelShape.FromKnobs(h.Depth, h.AspectRatio, h.WindowPattern, tokenizer.VocabSize, t);
        using var model = new GpuGpt(gpu, stream, blas, kernels, shape, b);
        model.Parameters.InitialiseLikeSpec(42);
        model.Parameters.RefreshBf16(model.Elementwise, stream);
        var settings = new OptimizerSettings(shape.ModelDim, h.UnembeddingLr, h.EmbeddingLr, h.ScalarLr, h.MatrixLr, h.AdamBetas.Beta1, h.AdamBetas.Beta2);
        using var optimizer = new MuonAdamWGpu(gpu, stream, blas, kernels, model.Parameters, settings);
        double flopsPerToken = shape.FlopsPerToken();
        Console.WriteLine($"model: {model.Parameters.Count / 1e6:F1} M parameters, depth {h.Depth}, width {shape.ModelDim}; batch {h.TotalBatchSize} tokens "
            + $"= {accumulation} × {b} × {t}; budget {budgetSeconds} s; kernels compiled {kernels.Compiled}, cached {kernels.DiskHits}");

        using var loader = new PackedLoader(trainShards, tokenizer, b, t, tokenCache: tokenCache);
        var clock = new TrainingClock(h.TotalBatchSize, flopsPerToken, budgetSeconds);
        var ema = new DebiasedEma();
        var inputs = new int[tokensPerMicroBatch];
        var targets = new int[tokensPerMicroBatch];
        int epoch = 1;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            double progress = clock.Progress; // before the step (SPEC §7)
            int step = clock.Step;
            stream.Synchronize();
            var stepWatch = Stopwatch.StartNew();
            model.Parameters.ZeroGradients(stream);
            model.ResetLossSum();
            long scoredTotal = 0;
            for (int micro = 0; micro < accumulation; micro++)
            {
                var (rows, e) = loader.Next();
                epoch = e;
                int scored = Split(rows, b, t, inputs, targets);
                loader.Return(rows);
                model.Upload(inputs, targets);
                model.ForwardBackward(1f / (scored * accumulation));
                scoredTotal += scored;
            }
            double loss = model.ReadLossSum() / (double)scoredTotal;
            if (TrainingClock.IsFastFail(loss))
            {
                Console.WriteLine();
                Console.WriteLine("FAIL");
                return 3;
            }
            double lrMultiplier = TrainingSchedule.LearningRateMultiplier(progress, h);
            optimizer.Step((float)lrMultiplier, (float)TrainingSchedule.MuonMomentum(step), (float)TrainingSchedule.MuonWeightDecay(progress, h));
            stream.Synchronize();
            double stepSeconds = stepWatch.Elapsed.TotalSeconds;
            bool stop = clock.CompleteStep(stepSeconds);
            Console.Write(ProgressLine.Format(step, clock.Progress, ema.Update(loss), lrMultiplier, stepSeconds, clock.TokensPerSecond(stepSeconds),
                clock.StepMfuPercent(stepSeconds), epoch, clock.RemainingSeconds));
            if (stop)
                break;
        }
        Console.WriteLine();

        // Evaluation: a fresh validation loader, EVAL_TOKENS / (B·T) batches, bpb over the scored target bytes.
        var bpb = new BpbAccumulator(tokenizer.TokenBytes.ToArray());
        var losses = new float[tokensPerMicroBatch];
        using (var validation = new PackedLoader([validationShard], tokenizer, b, t, tokenCache: tokenCache))
        {
            long batches = Math.Max(1, evalTokens / tokensPerMicroBatch);
            for (long i = 0; i < batches; i++)
            {
                var (rows, _) = validation.Next();
                Split(rows, b, t, inputs, targets);
                validation.Return(rows);
                model.Upload(inputs, targets);
                model.Forward();
                model.Loss(0f);
                stream.Synchronize();
                model.Activations.Losses.CopyTo(losses);
                bpb.Add(losses, targets);
            }
        }
        if (savePath is not null)
        {
            var values = model.Parameters.Entries.ToDictionary(e => e.Name, e => model.Parameters.Download(model.Parameters.Master, e.Name).Select(v => (double)v).ToArray());
            ModelCheckpoint.Save(savePath, shape, values);
        }
        var summary = new RunSummary(bpb.BitsPerByte, clock.TrainingSeconds, total.Elapsed.TotalSeconds, gpu.Memory.PeakMegabytes,
            clock.MfuPercent, clock.TotalTokensMillions, clock.Step, model.Parameters.Count / 1e6, h.Depth);
        Console.WriteLine($"data wait: {loader.WaitTime.TotalSeconds:F1} s in all");
        Console.Write(summary.Format());
        return 0;
    }

    /// <summary>Rows of T+1 → inputs row[0..T) and targets row[1..T]; returns how many targets are scored.</summary>
    private static int Split(int[] rows, int batch, int seqLen, int[] inputs, int[] targets)
    {
        for (int r = 0; r < batch; r++)
        {
            Array.Copy(rows, r * (seqLen + 1), inputs, r * seqLen, seqLen);
            Array.Copy(rows, r * (seqLen + 1) + 1, targets, r * seqLen, seqLen);
        }
        return targets.Length;
    }
}
