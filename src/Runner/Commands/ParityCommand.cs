using System.CommandLine;
using AutoResearch.Data;
using System.Runtime.InteropServices;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Model.Cpu;
using AutoResearch.Model.Gpu;
using AutoResearch.Native;

namespace AutoResearch.Runner;

/// <summary>
/// `autoresearch parity`: the loss and every parameter's gradient for a given checkpoint and token batch, written as
/// safetensors ("loss" plus the parameter names), on the GPU or with --device cpu on the fp64 reference, so any other
/// implementation can be compared with ours. The shape comes from the checkpoint (<see cref="CheckpointShape"/>); for an
/// older checkpoint that does not record it, --seq-len, --window-pattern and --set describe it.
/// </summary>
public static class ParityCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<FileInfo>("--checkpoint") { Description = "Model weights (.safetensors, reference names)", Required = true };
        var tokens = new Option<FileInfo>("--tokens") { Description = "Token rows: int32 little-endian, shape B × (T+1)", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "Where to write the loss and gradients (.safetensors)", Required = true };
        var device = new Option<string>("--device") { Description = "gpu or cpu", DefaultValueFactory = _ => "gpu" };
        device.AcceptOnlyFromAmong("gpu", "cpu");
        var seqLen = new Option<int?>("--seq-len") { Description = "T: tokens per row before the extra target token (default: the checkpoint's; 2048 for one that does not record it)" }.AtLeastOne();
        var pattern = new Option<string?>("--window-pattern") { Description = $"Attention windows per layer (S short, L full; the last layer is L; default: the checkpoint's; {Hyperparameters.Default.WindowPattern} for one that does not record it)" };
        var set = KnobOptions.CreateSetOption();
        set.Description = "Describe a checkpoint that does not record its shape: --set Name=Value, repeatable (e.g. --set HeadDim=64 --set KvHeads=2); "
            + "for one that does, a value other than the recorded one is refused. `autoresearch knobs` lists the knobs";
        var command = new Command("parity", "Write the loss and every gradient for a checkpoint and a token batch (GPU or --device cpu).")
        {
            checkpoint, tokens, output, device, seqLen, pattern, set,
        };
        command.SetAction(parse =>
        {
            var (loss, _) = Run(parse.GetRequiredValue(checkpoint).FullName, parse.GetRequiredValue(tokens).FullName, parse.GetRequiredValue(output).FullName,
                parse.GetValue(device) == "cpu", parse.GetValue(seqLen), parse.GetValue(pattern), parse.GetValue(set) ?? []);
            Console.WriteLine($"loss {loss:F6}; gradients written to {parse.GetRequiredValue(output).FullName}");
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Computes and writes the loss and gradients; returns the loss and the gradients (by name, fp32). seqLen, windowPattern
    /// and sets: null or empty to take the checkpoint's (see <see cref="CheckpointShape"/>). The shape is settled before any GPU work.
    /// </summary>
    public static (double Loss, Dictionary<string, float[]> Gradients) Run(string checkpointPath, string tokensPath, string outputPath, bool onCpu,
        int? seqLen = null, string? windowPattern = null, IReadOnlyList<string>? sets = null)
    {
        var tensors = SafeTensors.Read(checkpointPath);
        var shape = CheckpointShape.Resolve(checkpointPath, tensors, ModelCheckpoint.ReadInfo(checkpointPath), seqLen, windowPattern, sets ?? []);
        var parameters = ModelCheckpoint.Load(checkpointPath, shape);
        var (inputs, targets, batch) = ReadTokens(tokensPath, shape.SeqLen, shape.VocabSize);
        double loss;
        var gradients = new Dictionary<string, float[]>(StringComparer.Ordinal);
        if (onCpu)
        {
            var model = new CpuGpt(shape);
            foreach (var (name, values) in parameters)
                values.CopyTo(model.Parameters[name], 0);
            var grads = model.NewGradients();
            loss = model.ForwardBackward(inputs, targets, batch, grads).Loss;
            foreach (var (name, g) in grads)
                gradients[name] = g.Select(v => (float)v).ToArray();
        }
        else
        {
            using var device = CudaDevice.Open(0);
            using var stream = new CudaStream(device);
            using var blas = new Blas(device, stream);
            using var kernels = new KernelCache(device, KernelCache.DefaultKernelDirectory, CachePaths.Default().Kernels);
            using var model = new GpuGpt(device, stream, blas, kernels, shape, batch);
            foreach (var (name, values) in parameters)
                model.Parameters.Upload(name, values.Select(v => (float)v).ToArray());
            model.Parameters.RefreshBf16(model.Elementwise, stream);
            model.Parameters.ZeroGradients(stream);
            model.Upload(inputs, targets);
            model.ResetLossSum();
            int scored = targets.Count(t => t >= 0);
            model.ForwardBackward(1f / scored);
            loss = model.ReadLossSum() / scored;
            foreach (var (name, _, _) in shape.ParameterShapes())
                gradients[name] = model.Parameters.Download(model.Parameters.Gradients, name);
        }
        var output = new List<SafeTensor> { new("loss", "F32", [1], [(float)loss]) };
        foreach (var (name, rows, cols) in shape.ParameterShapes())
            output.Add(new SafeTensor(name, "F32", cols == 1 && name.EndsWith("lambdas", StringComparison.Ordinal) ? [rows] : [rows, cols], gradients[name]));
        SafeTensors.Write(outputPath, output, new Dictionary<string, string> { ["device"] = onCpu ? "cpu" : "gpu" });
        return (loss, gradients);
    }

    /// <summary>Rows of T+1 int32 tokens: inputs = row[0..T), targets = row[1..T].</summary>
    public static (int[] Inputs, int[] Targets, int Batch) ReadTokens(string path, int seqLen, int vocab)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"token file '{path}' does not exist", path);
        var bytes = File.ReadAllBytes(path);
        int row = seqLen + 1;
        if (bytes.Length == 0 || bytes.Length % (4 * row) != 0)
            throw new InvalidDataException($"token file '{path}' has {bytes.Length} bytes; expected a whole number of rows of {row} int32 tokens (--seq-len {seqLen})");
        var all = MemoryMarshal.Cast<byte, int>(bytes);
        int batch = all.Length / row;
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < seqLen; t++)
            {
                inputs[b * seqLen + t] = all[b * row + t];
                targets[b * seqLen + t] = all[b * row + t + 1];
            }
        }
        int bad = Array.FindIndex(inputs, x => x < 0 || x >= vocab);
        if (bad >= 0)
            throw new InvalidDataException($"token file '{path}': token {inputs[bad]} at position {bad} is outside the vocabulary 0..{vocab - 1}");
        return (inputs, targets, batch);
    }
}
