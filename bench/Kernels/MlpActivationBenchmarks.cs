using AutoResearch.Bench.Workbench;
using AutoResearch.Model;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using BenchmarkDotNet.Attributes;

namespace AutoResearch.Bench.Kernels;

/// <summary>
/// kernels/mlp_activation.cu, the MLP's activation as element-wise passes over N = B·T rows of the hidden width (the MLP's
/// path on cuBLAS GEMMs; SwiGLU always takes it): relu² (s = relu(u)², backward from s), GELU (tanh form, backward from u),
/// SwiGLU (s = silu(gate)·up from [gate | up], backward into both halves). Checked on 512 rows of the same width against the
/// fp64 reference. Memory-bound. Run: <c>bench --filter '*MlpActivationBenchmarks*'</c>.
/// </summary>
public class MlpActivationBenchmarks : TokenKernelBenchmark
{
    private const int CheckRows = 512;

    private MlpActivation _activation = null!;
    private ulong _u, _s, _ds, _du;

    [ParamsSource(nameof(Configs))]
    public override string Config { get; set; } = "baseline";

    public static IEnumerable<string> Configs => KernelBenchOptions.Current.ConfigsFor("baseline", "gelu", "swiglu");

    private long N => (long)B * T;

    private int F => Shape.MlpHidden;

    private Activation Act => Shape.Activation;

    /// <summary>Columns of the pre-activation: F, or 2F for SwiGLU's [gate | up].</summary>
    private int InputWidth => Shape.FcRows;

    protected override void Open() => _activation = new MlpActivation(KernelFiles);

    private void Allocate()
    {
        _u = Buffers.RandomBf16(N * InputWidth, 91, 3, "u").Pointer;
        _s = Buffers.Allocate<ushort>(N * F, "s").Pointer;
        _ds = Buffers.RandomBf16(N * F, 92, 1, "ds").Pointer;
        _du = Buffers.Allocate<ushort>(N * InputWidth, "du").Pointer;
        Device.Synchronize();
        _activation.Forward(Act, _u, N, F, _s, Stream); // relu²'s backward reads s = relu(u)²
    }

    [GlobalSetup(Target = nameof(Forward))]
    public void SetupForward() => Prepare(nameof(Forward), () => Check(backward: false), () =>
    {
        Allocate();
        return KernelWork.ActivationForward(Act.IsGated(), N, F);
    });

    [Benchmark]
    public void Forward()
    {
        Begin();
        _activation.Forward(Act, _u, N, F, _s, Stream);
        End();
    }

    [GlobalSetup(Target = nameof(Backward))]
    public void SetupBackward() => Prepare(nameof(Backward), () => Check(backward: true), () =>
    {
        Allocate();
        return KernelWork.ActivationBackward(Act.IsGated(), N, F);
    });

    /// <summary>From what the forward kept: s for relu², the pre-activation for GELU and SwiGLU.</summary>
    [Benchmark]
    public void Backward()
    {
        Begin();
        _activation.Backward(Act, MlpActivation.KeepsPreActivation(Act) ? _u : _s, _ds, N, F, _du, Stream);
        End();
    }

    private KernelCheck Check(bool backward)
    {
        int n = CheckRows, f = F;
        var check = new KernelCheck($"{Act.Name()}_{(backward ? "backward" : "forward")}", backward ? 902 : 901, $"{n} rows of {InputWidth} → {f}");
        var r = new Random(check.Seed);
        var (uBits, u) = HostRandom.Bf16Values(r, (long)n * InputWidth, 3);
        var (dsBits, ds) = HostRandom.Bf16Values(r, (long)n * f);
        var sRef = CpuOps.Activate(Act, u, n, f);
        using var scratch = new DeviceScratch(Device);
        var dU = scratch.Upload(uBits, "u");
        var dS = scratch.Poisoned<ushort>((long)n * f, "s");
        var dDs = scratch.Upload(dsBits, "ds");
        var dDu = scratch.Poisoned<ushort>((long)n * InputWidth, "du");
        RunForCheck(() =>
        {
            _activation.Forward(Act, dU.Pointer, n, f, dS.Pointer, Stream);
            if (backward)
                _activation.Backward(Act, MlpActivation.KeepsPreActivation(Act) ? dU.Pointer : dS.Pointer, dDs.Pointer, n, f, dDu.Pointer, Stream);
        });
        if (!backward)
        {
            check.CompareBf16("s", dS.ToArray(), sRef, 1e-2);
            return check;
        }
        // relu²'s backward sees u only through the bf16 s: its reference u is sqrt(s) as the kernel read it.
        var uSeen = MlpActivation.KeepsPreActivation(Act) ? u : Array.ConvertAll(dS.ToArray(), b => Math.Sqrt(AutoResearch.Native.Bf16.ToFloat(b)));
        check.CompareBf16("du", dDu.ToArray(), CpuOps.ActivateBackward(Act, uSeen, ds, n, f), 2e-2);
        return check;
    }
}
