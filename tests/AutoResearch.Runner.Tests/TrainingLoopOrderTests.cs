using System.Diagnostics;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model;
using AutoResearch.Runner.Training;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>
/// The order in which the loop drives a trainer: every batch is uploaded while the device still runs the work before it (the
/// first of a step while the optimizer runs), nothing but the synchronisation sits between a step's clock start and its first
/// micro-step, and the batches still reach the model in the loader's order.
/// </summary>
public class TrainingLoopOrderTests
{
    /// <summary>Records each call; a micro-step takes the batch uploaded last, as the GPU trainer's stream does.</summary>
    private sealed class RecordingTrainer(ModelShape shape, int batch) : ITrainer
    {
        private long _uploaded;
        private int[]? _uploadedTargets;
        private readonly Queue<float[]> _evaluations = new();
        private double _lossSum;

        public List<string> Calls { get; } = [];

        /// <summary>A digest of each batch a micro-step ran on, in order.</summary>
        public List<long> Consumed { get; } = [];

        public ModelShape Shape => shape;
        public int Batch => batch;
        public long ParameterCount => 1000;
        public double PeakMemoryMegabytes => 0;
        public string DeviceNote => "recording";

        public void Synchronize() => Calls.Add("sync");

        public void BeginStep()
        {
            Calls.Add("begin");
            _lossSum = 0;
        }

        public void Upload(int[] inputs, int[] targets)
        {
            Calls.Add("upload");
            _uploaded = Digest(inputs);
            _uploadedTargets = (int[])targets.Clone();
        }

        public void ForwardBackward(float gradScale)
        {
            Calls.Add("micro");
            Consumed.Add(_uploaded);
            Thread.Sleep(2);
            _lossSum += 2.0 * batch * shape.SeqLen;
        }

        public double ReadLossSum()
        {
            Calls.Add("loss");
            return _lossSum;
        }

        public void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay) => Calls.Add("optimizer");

        public void QueueEvaluation()
        {
            Calls.Add("queue");
            _evaluations.Enqueue(LossesFor(_uploadedTargets!));
        }

        public void TakeEvaluation(float[] losses)
        {
            Calls.Add("take");
            _evaluations.Dequeue().CopyTo(losses, 0);
        }

        public IReadOnlyDictionary<string, double[]> ParameterValues() => new Dictionary<string, double[]>();

        public Optim.OptimizerState OptimizerState() => throw new NotSupportedException();

        /// <summary>Device times of a step's parts as a GPU trainer reports them: 2 ms a micro-step, 0.5 ms the optimizer.</summary>
        public int LastStepDeviceMilliseconds(Span<double> destination)
        {
            ReadOnlySpan<double> parts = [2.0, 2.0, 0.5];
            parts.CopyTo(destination);
            return parts.Length;
        }

        public void Dispose()
        {
        }
    }

    /// <summary>A stand-in loss per token that depends on the token, so scoring a batch's losses against another's targets shows.</summary>
    private static float[] LossesFor(int[] targets) => Array.ConvertAll(targets, t => 0.5f + t % 7);

    private static long Digest(ReadOnlySpan<int> tokens)
    {
        long digest = 17;
        foreach (int token in tokens)
            digest = digest * 1_000_003 + token;
        return digest;
    }

    [Fact]
    public void The_start_up_line_adds_its_parts_and_sets_the_first_step_against_the_median_of_the_others()
    {
        var line = TrainingLoop.StartupLine(3.0, (0.2, 2.7), "device 0.1, kernels 1.8 s", 1.0, [0.31, 0.28, 0.29, 0.5], 0.42);
        Assert.Equal("start-up 3.0 s = before the trainer 0.2 s + trainer 2.5 s (device 0.1, kernels 1.8 s) + loop 0.3 s; "
            + "first step 1.00 s (0.42 s of it choosing cuBLASLt algorithms) against a median 0.30 s of the next 4", line);
        // Without a trainer's timings or planning time (the CPU trainer), and an odd count of other steps.
        Assert.Equal("start-up 1.5 s; first step 0.90 s against a median 0.40 s of the next 3",
            TrainingLoop.StartupLine(1.5, null, "", 0.9, [0.5, 0.4, 0.3]));
    }

    [Fact]
    public void The_step_time_line_sets_the_host_clocks_median_against_the_sum_of_the_parts_medians()
    {
        var times = new StepTimes(microSteps: 2);
        Assert.Null(times.Line());
        times.Add(0.2071, [100.0, 101.0, 2.0]);
        times.Add(0.2500, [100.5, 100.0, 2.0]);
        times.Add(0.2000, [99.0, 103.0, 2.5]);
        // Medians: host 207.1 ms; micro-steps 100.0 and 101.0 ms, optimizer 2.00 ms: 203.0 ms, 2.0 % under the host's.
        Assert.Equal("step time (medians of 3 counted steps): 207.1 ms on the host clock; on the device 100.0 + 101.0 ms of micro-steps "
            + "and 2.00 ms of optimizer = 203.0 ms: the host and the gaps add 2.0 %", times.Line());

        // A trainer that does not time its parts (the CPU reference), or a step without them: the host clock alone.
        var host = new StepTimes(microSteps: 1);
        host.Add(0.5, []);
        host.Add(0.3, [1.0, 2.0]);
        Assert.Equal("step time (medians of 2 counted steps): 400.0 ms on the host clock", host.Line());
    }

    [Fact]
    public void Batches_are_uploaded_ahead_and_reach_the_model_in_the_loaders_order()
    {
        var folder = TestGpu.NewTempDirectory("loop-order");
        var texts = Enumerable.Range(0, 300).Select(i => $"document {i} tells of {i % 7} foxes and {i % 5} dogs").ToList();
        var train = Path.Combine(folder, ParquetShards.FileName(0));
        ParquetShards.Write(train, texts);
        var validation = Path.Combine(folder, ParquetShards.FileName(ParquetShards.ValidationIndex));
        ParquetShards.Write(validation, texts.Take(8).ToList());
        var tokenizer = BpeTrainer.Train(texts, 300);
        var shape = ModelShape.FromKnobs(1, 64, "L", tokenizer.VocabSize, 16);
        var h = Hyperparameters.Default with { Depth = 1, DeviceBatchSize = 2, TotalBatchSize = 64 }; // 2 micro-steps a step
        using var trainer = new RecordingTrainer(shape, 2);
        var output = new StringWriter();
        var loop = new TrainingLoop(trainer, h, output) { AssumedFlopsPerSecond = 10_000 * shape.FlopsPerToken() };
        const int evalBatches = 5;

        int exit = loop.Run(tokenizer, [train], validation, budgetSeconds: 0.1, evalTokens: evalBatches * 32, savePath: null, Stopwatch.StartNew(),
            TestContext.Current.CancellationToken);

        Assert.Equal(0, exit);
        int steps = loop.Step;
        Assert.True(steps > 11, $"{steps} steps");
        // One batch uploaded before the first step; then each step: its clock starts after the synchronisation, the micro-steps
        // run back to back with the next batch uploaded between them, the optimizer is queued, the next step's first batch is
        // uploaded, and only then is the loss read (the wait for the device).
        string[] step = ["sync", "begin", "micro", "upload", "micro", "optimizer", "upload", "loss"];
        // The evaluation: two batches in flight, the next uploaded and queued before the one before is taken.
        string[] evaluation = ["upload", "queue", .. Enumerable.Repeat<string[]>(["upload", "queue", "take"], evalBatches - 1).SelectMany(s => s), "take"];
        Assert.Equal(["upload", .. Enumerable.Repeat(step, steps).SelectMany(s => s), .. evaluation], trainer.Calls);

        // The same batches, in the same order, as the loader hands them out.
        using var loader = new PackedLoader([train], tokenizer, 2, shape.SeqLen);
        var expected = new List<long>();
        for (int i = 0; i < trainer.Consumed.Count; i++)
        {
            var (rows, _) = loader.Next();
            var inputs = new int[2 * shape.SeqLen];
            for (int r = 0; r < 2; r++)
                Array.Copy(rows, r * (shape.SeqLen + 1), inputs, r * shape.SeqLen, shape.SeqLen);
            loader.Return(rows);
            expected.Add(Digest(inputs));
        }
        Assert.Equal(expected, trainer.Consumed);
        Assert.Equal(2 * steps, trainer.Consumed.Count);

        // Each batch's losses are scored against its own targets: val_bpb as the validation batches give it directly.
        var bpb = new Data.Evaluation.BpbAccumulator(tokenizer.TokenBytes.ToArray());
        using (var reader = new PackedLoader([validation], tokenizer, 2, shape.SeqLen))
        {
            for (int i = 0; i < evalBatches; i++)
            {
                var (rows, _) = reader.Next();
                var targets = new int[2 * shape.SeqLen];
                for (int r = 0; r < 2; r++)
                    Array.Copy(rows, r * (shape.SeqLen + 1) + 1, targets, r * shape.SeqLen, shape.SeqLen);
                reader.Return(rows);
                bpb.Add(LossesFor(targets), targets);
            }
        }
        Assert.Contains($"val_bpb:          {bpb.BitsPerByte.ToString("F6", System.Globalization.CultureInfo.InvariantCulture)}", output.ToString(),
            StringComparison.Ordinal);
        // The counted steps' times: the host clock's median, and the parts the trainer timed on the device.
        Assert.Contains($"step time (medians of {steps - 11} counted steps): ", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("on the device 2.0 + 2.0 ms of micro-steps and 0.50 ms of optimizer = 4.5 ms: the host and the gaps add ", output.ToString(),
            StringComparison.Ordinal);
        Directory.Delete(folder, recursive: true);
    }
}
