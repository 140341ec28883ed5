using System.Globalization;
using System.Diagnostics;
using AutoResearch.Data.Evaluation;
using AutoResearch.Data.Loading;
using AutoResearch.Data.Tokenizer;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Optim;
using AutoResearch.Runner.Experiment;

namespace AutoResearch.Runner.Training;

/// <summary>
/// The experiment of SPEC §7–9 on any <see cref="ITrainer"/>: gradient accumulation to the total batch, the schedules, the
/// first 11 steps uncounted, fast fail on NaN or loss &gt; 100, the one-line progress display, then the evaluation on
/// evalTokens of the validation shard, the optional checkpoint and the summary block. Reads top to bottom; the device
/// specifics are behind the trainer.
/// </summary>
public sealed class TrainingLoop(ITrainer trainer, Hyperparameters hyperparameters, TextWriter output)
{
    /// <summary>Exit code of a run stopped by the fast-fail rule (it prints FAIL).</summary>
    public const int FastFailExitCode = 3;

    /// <summary>Steps completed: the index of the step an interruption stopped before (or during).</summary>
    public int Step { get; private set; }

    /// <summary>
    /// The sustained rate assumed before the first step, to estimate the tokens the run will read (the repeated-data warning,
    /// <see cref="DataRepetition"/>): <see cref="DataRepetition.GpuFlopsPerSecond"/> or <see cref="DataRepetition.CpuFlopsPerSecond"/>.
    /// </summary>
    public double AssumedFlopsPerSecond { get; init; } = DataRepetition.GpuFlopsPerSecond;

    /// <summary>Seconds since the run's start when the trainer's set-up began and ended (null: not measured), for the start-up line.</summary>
    public (double Began, double Ended)? TrainerSetUp { get; init; }

    /// <summary>
    /// Where the start-up went and what the first step cost beyond the others: the work before the trainer (tokenizer, data
    /// list, checks), the trainer's set-up (<paramref name="trainerNote"/>: its parts), the loop's own (the data estimate, the
    /// loader, the first batch); then the first step against the median of the other uncounted ones (its extra: cuBLASLt's
    /// tuning of each new GEMM shape, first launches).
    /// </summary>
    public static string StartupLine(double startupSeconds, (double Began, double Ended)? trainerSetUp, string trainerNote, double firstStepSeconds,
        IReadOnlyList<double> otherUncountedSeconds, double firstStepPlanningSeconds = 0)
    {
        var text = new System.Text.StringBuilder(string.Create(CultureInfo.InvariantCulture, $"start-up {startupSeconds:F1} s"));
        if (trainerSetUp is var (began, ended))
        {
            text.Append(CultureInfo.InvariantCulture, $" = before the trainer {began:F1} s + trainer {ended - began:F1} s");
            if (trainerNote.Length > 0)
                text.Append(" (").Append(trainerNote).Append(')');
            text.Append(CultureInfo.InvariantCulture, $" + loop {startupSeconds - ended:F1} s");
        }
        if (otherUncountedSeconds.Count > 0)
        {
            double median = AutoResearch.Native.EventTiming.Median(otherUncountedSeconds);
            text.Append(CultureInfo.InvariantCulture, $"; first step {firstStepSeconds:F2} s");
            if (firstStepPlanningSeconds > 0)
                text.Append(CultureInfo.InvariantCulture, $" ({firstStepPlanningSeconds:F2} s of it choosing cuBLASLt algorithms)");
            text.Append(CultureInfo.InvariantCulture, $" against a median {median:F2} s of the next {otherUncountedSeconds.Count}");
        }
        return text.ToString();
    }

    /// <summary>
    /// What the summary's total − training seconds is made of: start-up (until the first step's clock starts: the device,
    /// the kernels, the weights, the loader, the first batch), the uncounted warm-up steps, the evaluation, and the rest (the
    /// gaps between steps: progress lines, the clock; the loader's waits are inside the steps).
    /// </summary>
    public static string OverheadLine(double totalSeconds, double trainingSeconds, double startupSeconds, int uncountedSteps, double uncountedSeconds,
        double evaluationSeconds)
    {
        double overhead = totalSeconds - trainingSeconds;
        double other = overhead - startupSeconds - uncountedSeconds - evaluationSeconds;
        return string.Create(CultureInfo.InvariantCulture,
            $"overhead (total − training): {overhead:F1} s = start-up {startupSeconds:F1} s + {uncountedSteps} uncounted steps {uncountedSeconds:F1} s "
            + $"+ evaluation {evaluationSeconds:F1} s + other {other:F1} s");
    }

    /// <summary>
    /// Runs training then evaluation; returns 0, or <see cref="FastFailExitCode"/>. Cancellation throws. A checkpoint
    /// (<paramref name="savePath"/>) records the shape, the knobs and <paramref name="tokenizerHash"/>; the optimizer's state goes to
    /// <paramref name="optimizerStatePath"/> when given.
    /// </summary>
    /// <param name="stepBudget">When set, exactly this many steps with progress = step / stepBudget (<see cref="TrainingClock.StepBudget"/>);
    /// <paramref name="budgetSeconds"/> then only sizes the repeated-data estimate.</param>
    public int Run(BpeTokenizer tokenizer, IReadOnlyList<string> trainShards, string validationShard, double budgetSeconds, long evalTokens,
        string? savePath, Stopwatch total, CancellationToken cancel, ShardTokenCache? tokenCache = null, string? tokenizerHash = null, int? stepBudget = null,
        string? optimizerStatePath = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(total);
        var h = hyperparameters;
        var shape = trainer.Shape;
        int t = shape.SeqLen, b = trainer.Batch;
        int tokensPerMicroBatch = b * t;
        int accumulation = TrainingClock.GradientAccumulationSteps(h.TotalBatchSize, b, t);
        output.WriteLine($"model: {trainer.ParameterCount / 1e6:F1} M parameters, depth {shape.Depth}, width {shape.ModelDim}; batch {h.TotalBatchSize} tokens "
            + $"= {accumulation} × {b} × {t}; budget {(stepBudget is { } n ? $"{n} steps" : $"{budgetSeconds} s")}; {trainer.DeviceNote}");
        foreach (var warning in trainer.StartWarnings)
            output.WriteLine(warning);

        var (dataTokens, estimated) = DataRepetition.TrainingTokens(trainShards, tokenCache);
        double flopsPerToken = shape.FlopsPerToken();
        var repeated = DataRepetition.StartWarning(dataTokens, estimated,
            stepBudget is { } steps ? (double)steps * h.TotalBatchSize : DataRepetition.ExpectedTokens(h.TotalBatchSize, budgetSeconds, flopsPerToken, AssumedFlopsPerSecond),
            AssumedFlopsPerSecond / flopsPerToken);
        if (repeated is not null)
            output.WriteLine(repeated);

        using var loader = new PackedLoader(trainShards, tokenizer, b, t, tokenCache: tokenCache);
        var clock = new TrainingClock(h.TotalBatchSize, flopsPerToken, budgetSeconds) { StepBudget = stepBudget };
        var ema = new DebiasedEma();
        var inputs = new int[tokensPerMicroBatch];
        var targets = new int[tokensPerMicroBatch];
        // Each micro-batch is read and uploaded while the device runs the one before (the reference's loop also fetches its
        // next batch right after each backward); the first of a step while the device runs the previous optimizer step. So
        // between the synchronisation that starts a step's clock and its first kernel there is no host work left.
        var (scored, stagedEpoch) = UploadNext(loader, b, t, inputs, targets);
        int epoch = stagedEpoch;
        double startupSeconds = 0, uncountedSeconds = 0, firstStepSeconds = 0, firstStepPlanning = 0;
        var laterUncounted = new List<double>();
        // The counted steps' host-clock times and, where the trainer times them on the device, their parts' times.
        var stepTimes = new StepTimes(accumulation);
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            double progress = clock.Progress; // before the step (SPEC §7)
            int step = clock.Step;
            trainer.Synchronize();
            if (step == 0)
                startupSeconds = total.Elapsed.TotalSeconds;
            var stepWatch = Stopwatch.StartNew();
            trainer.BeginStep();
            long scoredTotal = 0;
            for (int micro = 0; micro < accumulation; micro++)
            {
                trainer.ForwardBackward(1f / (scored * accumulation));
                scoredTotal += scored;
                epoch = stagedEpoch;
                if (micro + 1 < accumulation)
                    (scored, stagedEpoch) = UploadNext(loader, b, t, inputs, targets);
            }
            double lrMultiplier = TrainingSchedule.LearningRateMultiplier(progress, h.WarmupRatio, h.WarmdownRatio, h.FinalLrFrac);
            trainer.Step(lrMultiplier, TrainingSchedule.MuonMomentum(step), TrainingSchedule.MuonWeightDecay(progress, h.WeightDecay));
            // The next step's first batch (one batch more than the run uses, after its last step).
            (scored, stagedEpoch) = UploadNext(loader, b, t, inputs, targets);
            double loss = trainer.ReadLossSum() / scoredTotal; // waits for the device: the step ends here
            if (TrainingClock.IsFastFail(loss))
            {
                output.WriteLine();
                output.WriteLine("FAIL");
                return FastFailExitCode;
            }
            double stepSeconds = stepWatch.Elapsed.TotalSeconds;
            if (!TrainingClock.IsCounted(step))
            {
                uncountedSeconds += stepSeconds;
                if (step == 0)
                {
                    firstStepSeconds = stepSeconds;
                    firstStepPlanning = trainer.GemmPlanningTime.TotalSeconds;
                }
                else
                    laterUncounted.Add(stepSeconds);
            }
            else
                stepTimes.Add(stepSeconds, trainer);
            bool stop = clock.CompleteStep(stepSeconds);
            Step = clock.Step;
            output.Write(ProgressLine.Format(step, clock.Progress, ema.Update(loss), lrMultiplier, stepSeconds, clock.TokensPerSecond(stepSeconds),
                clock.StepMfuPercent(stepSeconds), epoch, clock.RemainingSeconds));
            if (stop)
                break;
        }
        output.WriteLine();

        // Evaluation: a fresh validation loader, evalTokens / (B·T) batches, bpb over the scored target bytes. Pipelined: the
        // device evaluates one batch while the host reads and uploads the next and scores the one before.
        var evaluationWatch = Stopwatch.StartNew();
        var bpb = new BpbAccumulator(tokenizer.TokenBytes.ToArray());
        var losses = new float[tokensPerMicroBatch];
        using (var validation = new PackedLoader([validationShard], tokenizer, b, t, tokenCache: tokenCache))
        {
            long batches = Math.Max(1, evalTokens / tokensPerMicroBatch);
            var queuedTargets = new Queue<int[]>();
            for (long i = 0; i < batches; i++)
            {
                cancel.ThrowIfCancellationRequested();
                var (rows, _) = validation.Next();
                var batchTargets = new int[tokensPerMicroBatch];
                Split(rows, b, t, inputs, batchTargets);
                validation.Return(rows);
                trainer.Upload(inputs, batchTargets);
                trainer.QueueEvaluation();
                queuedTargets.Enqueue(batchTargets);
                if (queuedTargets.Count == trainer.EvaluationsInFlight)
                    Score(trainer, losses, queuedTargets.Dequeue(), bpb);
            }
            while (queuedTargets.Count > 0)
                Score(trainer, losses, queuedTargets.Dequeue(), bpb);
        }
        double evaluationSeconds = evaluationWatch.Elapsed.TotalSeconds;
        var summary = new RunSummary(bpb.BitsPerByte, clock.TrainingSeconds, total.Elapsed.TotalSeconds, trainer.PeakMemoryMegabytes,
            clock.MfuPercent, clock.TotalTokensMillions, clock.Step, trainer.ParameterCount / 1e6, shape.Depth);
        output.WriteLine($"data wait: {loader.WaitTime.TotalSeconds:F1} s in all");
        if (stepTimes.Line() is { } stepLine)
            output.WriteLine(stepLine);
        output.WriteLine(OverheadLine(summary.TotalSeconds, summary.TrainingSeconds, startupSeconds, clock.Step - clock.CountedSteps, uncountedSeconds, evaluationSeconds));
        output.WriteLine(StartupLine(startupSeconds, TrainerSetUp, trainer.StartupNote, firstStepSeconds, laterUncounted, firstStepPlanning));
        if (DataRepetition.EndWarning(loader.PassesRead, loader.TokensPerPass) is { } endWarning)
            output.WriteLine(endWarning);
        output.Write(summary.Format());
        // After the summary: a checkpoint that cannot be written (the disk filled up during the run) fails the command, not the result.
        if (savePath is not null)
            ModelCheckpoint.Save(savePath, shape, trainer.ParameterValues(), Knobs.Values(h), tokenizerHash);
        if (optimizerStatePath is not null)
            trainer.OptimizerState().Save(optimizerStatePath);
        return 0;
    }

    /// <summary>Takes the oldest queued evaluation and adds its losses over <paramref name="batchTargets"/> to <paramref name="bpb"/>.</summary>
    private static void Score(ITrainer trainer, float[] losses, int[] batchTargets, BpbAccumulator bpb)
    {
        trainer.TakeEvaluation(losses);
        bpb.Add(losses, batchTargets);
    }

    /// <summary>Reads the next micro-batch, splits it into <paramref name="inputs"/> and <paramref name="targets"/> and uploads it; its scored targets and epoch.</summary>
    private (long Scored, int Epoch) UploadNext(PackedLoader loader, int batch, int seqLen, int[] inputs, int[] targets)
    {
        var (rows, epoch) = loader.Next();
        int scored = Split(rows, batch, seqLen, inputs, targets);
        loader.Return(rows);
        trainer.Upload(inputs, targets);
        return (scored, epoch);
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
