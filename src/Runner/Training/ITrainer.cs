using AutoResearch.Model;
using AutoResearch.Optim;

namespace AutoResearch.Runner.Training;

/// <summary>
/// The device half of `train`: one model and its optimizer on the GPU (<see cref="GpuTrainer"/>) or on the CPU reference
/// (<see cref="CpuTrainer"/>). <see cref="TrainingLoop"/> owns everything else (data, clock, schedules, fast fail, progress,
/// evaluation, summary), so both devices run the same experiment. Token arrays are B × T, row-major.
/// </summary>
public interface ITrainer : IDisposable
{
    ModelShape Shape { get; }

    /// <summary>Rows per micro-batch (B).</summary>
    int Batch { get; }

    long ParameterCount { get; }

    /// <summary>The summary's peak_vram_mb: the device allocator's peak; 0 on the CPU.</summary>
    double PeakMemoryMegabytes { get; }

    /// <summary>What the model line adds about the device (kernels compiled and cached, or the CPU reference).</summary>
    string DeviceNote { get; }

    /// <summary>Lines printed after the model line, each starting "warning:" (e.g. a kernel the compiler made slower); none by default.</summary>
    IReadOnlyList<string> StartWarnings => [];

    /// <summary>Waits until the device has finished everything queued, so step times are real.</summary>
    void Synchronize();

    /// <summary>Zeroes the gradients and the accumulated loss sum: the start of an optimizer step.</summary>
    void BeginStep();

    /// <summary>
    /// Queues one micro-batch's token ids for the next <see cref="ForwardBackward"/>, behind the work already queued: it returns
    /// without waiting for the device, and the arrays may be refilled at once. The loop uploads the next batch while the device
    /// still runs the current one.
    /// </summary>
    void Upload(int[] inputs, int[] targets);

    /// <summary>One micro-step on the batch last uploaded: forward, loss and backward; gradients of gradScale·Σ losses and the loss sum accumulate.</summary>
    void ForwardBackward(float gradScale);

    /// <summary>The loss sum accumulated since <see cref="BeginStep"/> (waits for the device, the queued optimizer step included).</summary>
    double ReadLossSum();

    /// <summary>Queues one MuonAdamW step with the schedules' values (<see cref="ReadLossSum"/> and <see cref="Synchronize"/> wait for it).</summary>
    void Step(double lrMultiplier, double muonMomentum, double muonWeightDecay);

    /// <summary>
    /// Queues the evaluation (forward and loss, no gradients) of the batch last uploaded and the copy of its per-token losses;
    /// returns at once. At most <see cref="EvaluationsInFlight"/> may wait to be taken.
    /// </summary>
    void QueueEvaluation();

    /// <summary>Waits for the oldest queued evaluation and copies its per-token losses (nats) into <paramref name="losses"/>.</summary>
    void TakeEvaluation(float[] losses);

    /// <summary>How many queued evaluations may wait to be taken.</summary>
    int EvaluationsInFlight => 2;

    /// <summary>The parameters by reference name (fp64, from the fp32 master weights on the GPU), for checkpoints.</summary>
    IReadOnlyDictionary<string, double[]> ParameterValues();

    /// <summary>How the trainer's own set-up time was spent, for the start-up line ("" when it does not say).</summary>
    string StartupNote => "";

    /// <summary>Host time spent choosing GEMM algorithms so far (the first step's, for the start-up line; zero where none are chosen).</summary>
    TimeSpan GemmPlanningTime => TimeSpan.Zero;

    /// <summary>
    /// The device's own time for each part of the step whose loss <see cref="ReadLossSum"/> last read: each micro-step in order,
    /// then the optimizer step, in milliseconds between events queued around them, written into <paramref name="destination"/>;
    /// returns how many (0 where the trainer does not time its parts, as the CPU reference; at most destination's length).
    /// </summary>
    int LastStepDeviceMilliseconds(Span<double> destination) => 0;

    /// <summary>The optimizer's state after the steps taken (waits for the device), for `train --save-optimizer`.</summary>
    OptimizerState OptimizerState();
}
