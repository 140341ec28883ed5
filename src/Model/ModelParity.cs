using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;

namespace AutoResearch.Model;

/// <summary>
/// The whole GPU model against the fp64 CPU reference for one shape: the loss and every parameter's gradient for one batch of
/// random tokens, from the same weights (drawn from a seed, zero-initialised tensors given small random values so their
/// gradients are exercised, everything rounded to bf16 first as the GPU reads it). The GPU keeps bf16 activations between ops
/// (SPEC §5), so the bounds are bf16-sized: <see cref="LossBound"/> relative for the loss, <see cref="GradientBound"/> relative
/// L2 per gradient tensor. The lambdas' gradients are single sums over all N·C products g·x, whose terms largely cancel at
/// random weights (the sum can be a hundredth of its terms), so a reduced-precision model cannot match them to a fraction of
/// their own size: their error is measured against max(|sum|, ‖terms‖₂) per layer, the scale bf16 noise in the terms gives the
/// sum, with the same bound. The reference is fp64 throughout, or (roundedReference) rounds to bf16 where the GPU stores bf16:
/// bf16 storage alone moves the gradients of a 32-layer model's top layers by about 5 % from fp64 (2 % at depth 8), so deep
/// models are held to the rounding reference, which leaves only the kernels' own arithmetic between the two. Used by the GPU
/// tests and by `autoresearch sweep` (which reports both).
/// </summary>
public static class ModelParity
{
    public const double LossBound = 1e-2;

    public const double GradientBound = 5e-2;

    /// <summary>The outcome: both losses and each tensor's relative L2 error of the GPU gradient against the CPU's.</summary>
    public sealed record Result(double CpuLoss, double GpuLoss, IReadOnlyDictionary<string, double> GradientErrors, bool FusedMlp)
    {
        /// <summary>The lambdas' gradients (one scalar a layer), CPU and GPU, for reports.</summary>
        public IReadOnlyDictionary<string, (double[] Cpu, float[] Gpu)> Lambdas { get; init; } = new Dictionary<string, (double[], float[])>();

        public double LossError => Math.Abs(GpuLoss - CpuLoss) / Math.Max(Math.Abs(CpuLoss), 1e-12);

        /// <summary>The worst tensor and its error.</summary>
        public (string Name, double Error) Worst => GradientErrors.MaxBy(kv => double.IsNaN(kv.Value) ? double.PositiveInfinity : kv.Value) is var w
            ? (w.Key, w.Value) : ("", 0);

        /// <summary>Loss and every gradient within their bounds (NaN never is).</summary>
        public bool Passed => LossError <= LossBound && GradientErrors.Values.All(e => e <= GradientBound);

        /// <summary>What is off, one line per tensor, for a failure message.</summary>
        public string Describe()
        {
            var lines = new List<string> { $"loss cpu {CpuLoss:F6} gpu {GpuLoss:F6} (relative error {LossError:E2}, bound {LossBound:E0})" };
            lines.AddRange(GradientErrors.Where(kv => !(kv.Value <= GradientBound)).Select(kv => $"{kv.Key}: relative error {kv.Value:E3} (bound {GradientBound:E0})"));
            foreach (var (name, (cpu, gpu)) in Lambdas.Where(kv => !(GradientErrors[kv.Key] <= GradientBound)))
                lines.Add($"{name}: cpu [{string.Join(", ", cpu.Select(v => v.ToString("E3")))}] gpu [{string.Join(", ", gpu.Select(v => v.ToString("E3")))}]");
            return string.Join('\n', lines);
        }
    }

    /// <summary>
    /// Runs one batch of <paramref name="batch"/> rows on both models. <paramref name="fusedMlp"/> false forces the cuBLAS MLP
    /// path; <paramref name="attention"/> defaults to flash attention for the shape's head size.
    /// </summary>
    /// <param name="lambdaSpread">0: the lambdas at their initial values (1 and 0.1); else each drawn around them, as a trained
    /// model's are (resid 1 ± spread, x0 0.1 + spread·U[0, 1)).</param>
    /// <param name="roundedReference">false: the fp64 reference (the model's function); true: the reference that rounds to bf16
    /// where the GPU stores bf16 (<see cref="CpuGpt.RoundActivationsToBf16"/>), against which deep models, whose bf16 noise
    /// compounds over the layers, are held.</param>
    /// <param name="recomputeMlp">The GPU model recomputes the MLP activations in the backward (the Recompute knob).</param>
    /// <param name="fusedMlp">true: our GEMMs with fused epilogues wherever the shape takes them (the MLP's, and the q and k
    /// projections with rotary + QK-norm); false: cuBLAS and separate passes everywhere.</param>
    public static Result Run(ModelShape shape, int batch, int seed, CudaDevice device, CudaStream stream, Blas blas, KernelCache kernels,
        bool fusedMlp = true, IAttentionKernels? attention = null, int headChunkRows = 1000, double lambdaSpread = 0, bool roundedReference = false,
        bool recomputeMlp = false)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var (cpu, inputs, targets) = Reference(shape, batch, seed, lambdaSpread, roundedReference,
            followFusedMlp: fusedMlp && GpuGpt.UsesFusedMlp(device.Properties, shape, batch));
        var cpuGrads = cpu.NewGradients();
        var termNorms = new Dictionary<string, double[]>(StringComparer.Ordinal);
        var (cpuLoss, _) = cpu.ForwardBackward(inputs, targets, batch, cpuGrads, lambdaTermNorms: termNorms);
        int scored = targets.Count(t => t >= 0);


        // fusedMlp false runs every product on cuBLAS: the q and k projections too, with the separate rotary pass.
        using var gpu = new GpuGpt(device, stream, blas, kernels, shape, batch, attention, headChunkRows, fusedMlp, recomputeMlp, fusedQk: fusedMlp);
        foreach (var (name, values) in cpu.Parameters)
            gpu.Parameters.Upload(name, values.Select(v => (float)v).ToArray());
        gpu.Parameters.RefreshBf16(gpu.Elementwise, stream);
        gpu.Parameters.ZeroGradients(stream);
        gpu.Upload(inputs, targets);
        gpu.ResetLossSum();
        gpu.ForwardBackward(1f / scored);
        double gpuLoss = gpu.ReadLossSum() / scored;
        var errors = new Dictionary<string, double>(StringComparer.Ordinal);
        var lambdas = new Dictionary<string, (double[], float[])>(StringComparer.Ordinal);
        foreach (var (name, cpuGrad) in cpuGrads)
        {
            var gpuGrad = gpu.Parameters.Download(gpu.Parameters.Gradients, name);
            if (termNorms.TryGetValue(name, out var norms))
            {
                errors[name] = ScaledError(gpuGrad, cpuGrad, norms);
                lambdas[name] = (cpuGrad, gpuGrad);
            }
            else
            {
                errors[name] = Accuracy.RelativeL2(gpuGrad, cpuGrad);
            }
        }
        return new Result(cpuLoss, gpuLoss, errors, gpu.FusedMlp) { Lambdas = lambdas };
    }

    /// <summary>
    /// The CPU model of the check with its weights (SPEC's initialisation from the seed, the zero-initialised tensors given
    /// small random values, everything but the lambdas rounded to bf16) and one batch of random tokens (every 97th target
    /// ignored).
    /// </summary>
    public static (CpuGpt Cpu, int[] Inputs, int[] Targets) Reference(ModelShape shape, int batch, int seed, double lambdaSpread = 0, bool roundedReference = false,
        bool followFusedMlp = false)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var cpu = new CpuGpt(shape) { RoundActivationsToBf16 = roundedReference, FollowFusedMlp = followFusedMlp };
        cpu.InitialiseLikeSpec(seed);
        var r = new Random(seed);
        foreach (var (name, values) in cpu.Parameters)
        {
            bool zeroInit = name.EndsWith("c_proj.weight", StringComparison.Ordinal) || name.EndsWith("ve_gate.weight", StringComparison.Ordinal);
            for (int i = 0; i < values.Length; i++)
            {
                double v = zeroInit ? (r.NextDouble() * 2 - 1) * 0.02
                    : name == "resid_lambdas" ? values[i] + lambdaSpread * (r.NextDouble() * 2 - 1)
                    : name == "x0_lambdas" ? values[i] + lambdaSpread * r.NextDouble()
                    : values[i];
                values[i] = name.EndsWith("lambdas", StringComparison.Ordinal) ? (float)v : Bf16.Round((float)v);
            }
        }
        int n = batch * shape.SeqLen, vocab = shape.VocabSize;
        var inputs = new int[n];
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            inputs[i] = r.Next(vocab);
            targets[i] = i % 97 == 5 ? -1 : r.Next(vocab);
        }
        return (cpu, inputs, targets);
    }

    /// <summary>‖actual − expected‖₂ / ‖max(|expected_i|, scale_i)‖₂ (+∞ for a non-finite value): a relative error whose scale
    /// does not fall below what each sum's terms give it.</summary>
    public static double ScaledError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale)
    {
        if (actual.Length != expected.Length || scale.Length != expected.Length)
            throw new ArgumentException($"length mismatch: {actual.Length}, {expected.Length}, {scale.Length}");
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i]))
                return double.PositiveInfinity;
            double d = actual[i] - expected[i], s = Math.Max(Math.Abs(expected[i]), scale[i]);
            diff += d * d;
            norm += s * s;
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), double.Epsilon);
    }
}
