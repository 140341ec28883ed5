using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Cpu;
using AutoResearch.Testing;
using Xunit;

namespace AutoResearch.Runner.Tests;

public class ParityCommandTests
{
    private static (string Checkpoint, string Tokens, CpuGpt Model, int[] Rows) Setup(ModelShape shape, int batch, int seed)
    {
        var dir = TestGpu.NewTempDirectory("parity");
        var model = new CpuGpt(shape);
        model.InitialiseLikeSpec(seed);
        var r = new Random(seed);
        foreach (var (name, values) in model.Parameters)
        {
            for (int i = 0; i < values.Length; i++)
            {
                if (values[i] == 0)
                    values[i] = (r.NextDouble() * 2 - 1) * 0.02;
                // What the checkpoint keeps: bf16 embeddings, fp32 for the rest.
                values[i] = ModelCheckpoint.StoredAsBf16(name) ? AutoResearch.Native.Bf16.Round((float)values[i]) : (float)values[i];
            }
        }
        var checkpoint = Path.Combine(dir, "model.safetensors");
        ModelCheckpoint.Save(checkpoint, shape, model.Parameters);
        var rows = new int[batch * (shape.SeqLen + 1)];
        for (int i = 0; i < rows.Length; i++)
            rows[i] = r.Next(shape.VocabSize);
        var tokens = Path.Combine(dir, "tokens.bin");
        File.WriteAllBytes(tokens, System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.AsSpan()).ToArray());
        return (checkpoint, tokens, model, rows);
    }

    [Fact]
    public void Cpu_parity_writes_the_reference_loss_and_every_gradient()
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, model, rows) = Setup(shape, 2, 21);
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "grads.safetensors");
        var (loss, _) = ParityCommand.Run(checkpoint, tokens, output, onCpu: true, seqLen: 8, windowPattern: "SL");

        var inputs = new int[16];
        var targets = new int[16];
        for (int b = 0; b < 2; b++)
        {
            for (int t = 0; t < 8; t++)
            {
                inputs[b * 8 + t] = rows[b * 9 + t];
                targets[b * 8 + t] = rows[b * 9 + t + 1];
            }
        }
        var grads = model.NewGradients();
        double expected = model.ForwardBackward(inputs, targets, 2, grads).Loss;
        Assert.Equal(expected, loss, 6);
        var written = SafeTensors.Read(output);
        Assert.Equal((float)expected, written["loss"].Values[0], 5);
        foreach (var (name, g) in grads)
            Numerics.AssertClose(name, written[name].Values, g, 1e-6, 21);
    }

    [Fact]
    public void Token_file_of_the_wrong_size_is_a_clear_error()
    {
        var path = Path.Combine(TestGpu.NewTempDirectory("parity"), "bad.bin");
        File.WriteAllBytes(path, new byte[4 * 10]);
        var e = Assert.Throws<InvalidDataException>(() => ParityCommand.ReadTokens(path, 8, 50));
        Assert.Contains("rows of 9 int32 tokens", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-8")]
    public void Parity_with_a_seq_len_below_one_is_refused_naming_the_flag(string seqLen)
    {
        var shape = ModelShape.FromKnobs(2, 64, "SL", 50, 8);
        var (checkpoint, tokens, _, _) = Setup(shape, 2, 23);
        var output = Path.Combine(Path.GetDirectoryName(checkpoint)!, "grads.safetensors");

        var (exit, _, stderr) = DoctorCommandTests.RunCli("parity", "--checkpoint", checkpoint, "--tokens", tokens, "--out", output, "--device", "cpu",
            "--seq-len", seqLen, "--window-pattern", "SL");

        Assert.NotEqual(0, exit);
        Assert.StartsWith("autoresearch: error: --seq-len ", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
    }

    [GpuFact]
    public void Gpu_and_cpu_parity_agree_through_the_command()
    {
        var shape = ModelShape.FromKnobs(2, 128, "SL", 256, 128);
        var (checkpoint, tokens, _, _) = Setup(shape, 2, 22);
        var dir = Path.GetDirectoryName(checkpoint)!;
        var (cpuLoss, cpuGrads) = ParityCommand.Run(checkpoint, tokens, Path.Combine(dir, "cpu.safetensors"), true, 128, "SL");
        var (gpuLoss, gpuGrads) = ParityCommand.Run(checkpoint, tokens, Path.Combine(dir, "gpu.safetensors"), false, 128, "SL");
        Assert.Equal(cpuLoss, gpuLoss, 1e-2 * cpuLoss);
        foreach (var (name, g) in cpuGrads)
            Numerics.AssertClose(name, gpuGrads[name], g.Select(v => (double)v).ToArray(), 5e-2, 22);
    }
}
