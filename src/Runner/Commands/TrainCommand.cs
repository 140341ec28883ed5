using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using AutoResearch.Data;
using AutoResearch.Data.Evaluation;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;
using AutoResearch.Optim;
using AutoResearch.Optim.Gpu;
using AutoResearch.Runner.Training;

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
        var budget = new Option<double>("--time-budget") { Description = "Training seconds counted after the 11 warm-up steps", DefaultValueFactory = _ => Constants.TimeBudgetSeconds };
        var depth = new Option<int>("--depth") { Description = "Layers", DefaultValueFactory = _ => Hyperparameters.Default.Depth };
        var deviceBatch = new Option<int>("--device-batch") { Description = "Rows per micro-batch (lower it if the GPU runs out of memory)", DefaultValueFactory = _ => Hyperparameters.Default.DeviceBatch };
        var totalBatch = new Option<int>("--total-batch") { Description = "Tokens per optimizer step", DefaultValueFactory = _ => Hyperparameters.Default.TotalBatchTokens };
        var evalTokens = new Option<long>("--eval-tokens") { Description = "Validation tokens scored at the end", DefaultValueFactory = _ => Constants.EvalTokens };
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
            var h = Hyperparameters.Default with
            {
                Depth = parse.GetValue(depth),
                DeviceBatch = parse.GetValue(deviceBatch),
                TotalBatchTokens = parse.GetValue(totalBatch),
            };
            return Task.FromResult(Run(h, parse.GetValue(budget), parse.GetValue(evalTokens), CachePaths.From(parse.GetValue(cache)), parse.GetValue(save), token));
        });
        return command;
    }

    private static int Run(Hyperparameters h, double budgetSeconds, long evalTokens, CachePaths cache, string? savePath, CancellationToken cancel)
    {
        var total = Stopwatch.StartNew();
        int t = Constants.MaxSeqLen, b = h.DeviceBatch;
        int tokensPerMicroBatch = b * t;
        if (h.TotalBatchTokens % tokensPerMicroBatch != 0)
            throw new ArgumentException($"--total-batch {h.TotalBatchTokens} is not a multiple of device batch × T = {tokensPerMicroBatch}");
        int accumulation = h.TotalBatchTokens / tokensPerMicroBatch;
        var tokenizer = TokenizerFiles.Load(cache.Tokenizer);
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
        using var kernels = new KernelCache(gpu, KernelCache.DefaultKernelDirectory, KernelCache.DefaultCacheDirectory);
        var shape = ModelShape.FromKnobs(h.Depth, h.AspectRatio, h.WindowPattern, tokenizer.VocabSize, t);
        using var model = new GpuGpt(gpu, stream, blas, kernels, shape, b);
        model.Parameters.InitialiseLikeSpec(h.Seed);
        model.Parameters.RefreshBf16(model.Elementwise, stream);
        var settings = new OptimizerSettings(shape.ModelDim, h.UnembeddingLearningRate, h.EmbeddingLearningRate, h.ScalarLearningRate,
            h.MatrixLearningRate, h.AdamBeta1, h.AdamBeta2);
        using var optimizer = new MuonAdamWGpu(gpu, stream, blas, kernels, model.Parameters, settings);
        long nonEmbedding = model.Parameters.Entries.Where(e => !(e.Name == "transformer.wte.weight" || e.Name.StartsWith("value_embeds.", StringComparison.Ordinal)
            || e.Name.EndsWith("lambdas", StringComparison.Ordinal))).Sum(e => e.Count);
        double flopsPerToken = 6.0 * nonEmbedding + shape.Windows.Sum(w => 12.0 * shape.Heads * ModelShape.HeadDim * Math.Min(w, t));
        Console.WriteLine($"model: {model.Parameters.Count / 1e6:F1} M parameters, depth {h.Depth}, width {shape.ModelDim}; batch {h.TotalBatchTokens} tokens "
            + $"= {accumulation} × {b} × {t}; budget {budgetSeconds} s; kernels compiled {kernels.Compiled}, cached {kernels.DiskHits}");

        using var loader = new PackedLoader(trainShards, tokenizer, b, t);
        var inputs = new int[tokensPerMicroBatch];
        var targets = new int[tokensPerMicroBatch];
        double trainingSeconds = 0, emaLoss = 0;
        int step = 0, epoch = 1;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            double progress = TrainingSchedule.Progress(trainingSeconds, budgetSeconds);
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
            float lossSum = model.ReadLossSum();
            double loss = lossSum / scoredTotal;
            if (double.IsNaN(loss) || loss > 100)
            {
                Console.WriteLine();
                Console.WriteLine("FAIL");
                return 3;
            }
            double lrMultiplier = TrainingSchedule.LearningRateMultiplier(progress, h.WarmupRatio, h.WarmdownRatio, h.FinalLearningRateFraction);
            optimizer.Step((float)lrMultiplier, (float)TrainingSchedule.MuonMomentum(step), (float)TrainingSchedule.MuonWeightDecay(progress, h.WeightDecay));
            stream.Synchronize();
            double stepSeconds = stepWatch.Elapsed.TotalSeconds;
            if (step > 10)
                trainingSeconds += stepSeconds;
            emaLoss = 0.9 * emaLoss + 0.1 * loss;
            double debiased = emaLoss / (1 - Math.Pow(0.9, step + 1));
            double tokensPerSecond = h.TotalBatchTokens / stepSeconds;
            double mfu = flopsPerToken * tokensPerSecond / Constants.PeakFlops;
            double remaining = Math.Max(0, budgetSeconds - trainingSeconds);
            Console.Write(string.Create(CultureInfo.InvariantCulture,
                $"\rstep {step:D5} ({100 * TrainingSchedule.Progress(trainingSeconds, budgetSeconds):F1}%) | loss: {debiased:F6} | lrm: {lrMultiplier:F2} | dt: {stepSeconds * 1000:F0}ms | tok/sec: {tokensPerSecond:N0} | mfu: {100 * mfu:F1}% | epoch: {epoch} | remaining: {remaining:F0}s    "));
            step++;
            if (step > 11 && trainingSeconds >= budgetSeconds)
                break;
        }
        Console.WriteLine();
        int countedSteps = step - 11;

        // Evaluation: a fresh validation loader, EVAL_TOKENS / (B·T) batches, bpb over the scored target bytes.
        var bpb = new BpbAccumulator(tokenizer.TokenBytes.ToArray());
        var losses = new float[tokensPerMicroBatch];
        using (var validation = new PackedLoader([validationShard], tokenizer, b, t))
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
        double countedTokensPerSecond = countedSteps * (double)h.TotalBatchTokens / Math.Max(trainingSeconds, 1e-9);
        var summary = new Summary(bpb.BitsPerByte, trainingSeconds, total.Elapsed.TotalSeconds, gpu.Memory.PeakMegabytes,
            100 * flopsPerToken * countedTokensPerSecond / Constants.PeakFlops, step * (double)h.TotalBatchTokens / 1e6, step,
            model.Parameters.Count / 1e6, h.Depth);
        Console.WriteLine($"data wait: {loader.WaitTime.TotalSeconds:F1} s in all");
        Console.WriteLine(summary.Format());
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
