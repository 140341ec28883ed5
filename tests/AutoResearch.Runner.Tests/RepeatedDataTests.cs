using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using AutoResearch.Data.Shards;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model;
using AutoResearch.Runner.Training;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

/// <summary>
/// The training loop on data smaller than the run reads: the progress line's epoch counts passes over the data (1 during the
/// first), and a `warning:` line says so at the start and again before the summary. The loop runs for real; the model is a
/// stand-in that takes a fixed time a step, so the test is quick and the numbers are known.
/// </summary>
public partial class RepeatedDataTests
{
    /// <summary>A model that computes nothing: loss 2 per token, a few milliseconds a micro-step.</summary>
    private sealed class StandInTrainer(ModelShape shape, int batch, IReadOnlyList<string>? startWarnings = null) : ITrainer
    {
        private double _lossSum;

        public ModelShape Shape => shape;
        public int Batch => batch;
        public long ParameterCount => 1000;
        public double PeakMemoryMegabytes => 0;
        public string DeviceNote => "stand-in";
        public IReadOnlyList<string> StartWarnings => startWarnings ?? [];

        public void Synchronize()
        {
        }

        public void BeginStep() => _lossSum = 0;

        private int _uploaded;

        public void Upload(int[] inputs, int[] targets) => _uploaded = targets.Length;

        public void ForwardBackward(float gradScale)
        {
            Thread.Sleep(3);
            _lossSum += 2.0 * _uploaded;
        }

        public double ReadLossSum() => _lossSum;

        public void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay)
        {
        }

        public void QueueEvaluation()
        {
        }

        public void TakeEvaluation(float[] losses) => Array.Fill(losses, 1f);

        public IReadOnlyDictionary<string, double[]> ParameterValues() => new Dictionary<string, double[]>();

        public Optim.OptimizerState OptimizerState() => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    [GeneratedRegex(@"step (\d{5}) .*\| epoch: (\d+) \|")]
    private static partial Regex EpochPattern();

    /// <summary>Trains on <paramref name="documents"/> documents of ~12 tokens with 2 rows of 16 tokens a step for 0.4 s of counted time.</summary>
    private static string Train(int documents, IReadOnlyList<string>? startWarnings = null)
    {
        var folder = TestGpu.NewTempDirectory("repeated");
        var texts = Enumerable.Range(0, documents).Select(i => $"document {i} says the quick brown fox jumps over the lazy dog").ToList();
        var train = Path.Combine(folder, ParquetShards.FileName(0));
        ParquetShards.Write(train, texts);
        var validation = Path.Combine(folder, ParquetShards.FileName(ParquetShards.ValidationIndex));
        ParquetShards.Write(validation, texts.Take(4).ToList());
        var tokenizer = BpeTrainer.Train(texts, 300);
        var shape = ModelShape.FromKnobs(1, 64, "L", tokenizer.VocabSize, 16);
        var h = Hyperparameters.Default with { Depth = 1, DeviceBatchSize = 2, TotalBatchSize = 32 };
        var output = new StringWriter();
        using var trainer = new StandInTrainer(shape, 2, startWarnings);
        // The stand-in's own rate (32 tokens in ~3 ms): the start-up estimate is then close to what the run reads.
        var loop = new TrainingLoop(trainer, h, output) { AssumedFlopsPerSecond = 10_000 * shape.FlopsPerToken() };

        int exit = loop.Run(tokenizer, [train], validation, budgetSeconds: 0.4, evalTokens: 64, savePath: null, Stopwatch.StartNew(), TestContext.Current.CancellationToken);

        Assert.Equal(0, exit);
        Directory.Delete(folder, recursive: true);
        return output.ToString();
    }

    [Fact]
    public void The_epoch_on_the_progress_line_counts_passes_over_the_data_starting_at_1()
    {
        string output = Train(documents: 40);

        var epochs = output.Split('\r', '\n').Select(l => EpochPattern().Match(l)).Where(m => m.Success)
            .Select(m => (Step: int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Epoch: int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))).ToList();
        Assert.True(epochs.Count > 20, output);
        Assert.Equal(1, epochs[0].Epoch); // 40 documents are ~500 tokens: step 0 (34 tokens) is in the first pass
        Assert.Equal(epochs.Select(e => e.Epoch).Order(), epochs.Select(e => e.Epoch)); // never goes back
        Assert.True(epochs[^1].Epoch >= 2, $"the run read its data more than once but the last epoch is {epochs[^1].Epoch}");
        // Passes grow with the steps, not with how far ahead the loader has read: a step takes 34 tokens, whole or cut documents
        // of at least 5 tokens, from the 40 documents (~400 tokens) of a pass.
        foreach (var (step, epoch) in epochs)
            Assert.InRange(epoch, 1, 2 + (step + 1) * 34 / 200);
    }

    [Fact]
    public void Data_smaller_than_the_run_is_named_in_a_warning_at_the_start_and_before_the_summary()
    {
        string output = Train(documents: 40);

        var lines = output.Split('\n');
        var warnings = lines.Select((line, index) => (line, index)).Where(l => l.line.StartsWith("warning: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, warnings.Count);
        int firstStep = Array.FindIndex(lines, l => l.Contains("step 00000", StringComparison.Ordinal));
        int summary = Array.IndexOf(lines, "---");
        Assert.True(warnings[0].index < firstStep, $"the first warning comes after step 0:\n{output}");
        Assert.True(warnings[1].index < summary && warnings[1].index > firstStep, $"the second warning is not just before the summary:\n{output}");
        foreach (var (line, _) in warnings)
        {
            TestContext.Current.TestOutputHelper?.WriteLine(line);
            Assert.Matches(@"\d+(\.\d+)? passes", line);
            Assert.Contains("val_bpb", line, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_trainers_start_warnings_follow_the_model_line_each_on_its_own()
    {
        string[] given = ["warning: the compiler gave up speed in 1 kernel file(s) (correct, but slower): a.cu: (C7511) note", "warning: second"];

        var lines = Train(documents: 4000, given).Split('\n');

        int model = Array.FindIndex(lines, l => l.StartsWith("model: ", StringComparison.Ordinal));
        Assert.True(model >= 0, string.Join('\n', lines));
        Assert.Equal(given, lines[(model + 1)..(model + 3)]);
        Assert.Equal(2, lines.Count(l => l.StartsWith("warning: ", StringComparison.Ordinal))); // nothing else warns here
    }

    [Fact]
    public void Data_larger_than_the_run_gives_no_warning()
    {
        string output = Train(documents: 4000);

        Assert.DoesNotContain("warning:", output, StringComparison.Ordinal);
        Assert.Matches(@"epoch: 1 \|", output);
        Assert.DoesNotMatch(@"epoch: [2-9]", output);
    }
}
