namespace AutoResearch.Model.Checkpoint;

/// <summary>
/// The model's parameters as a safetensors checkpoint in the reference's names and shapes (weights out × in, the lambdas as
/// vectors), the embeddings (wte, value_embeds) stored BF16 as in the reference, everything else F32.
/// </summary>
public static class ModelCheckpoint
{
    public static bool StoredAsBf16(string name)
        => name == "transformer.wte.weight" || name.StartsWith("value_embeds.", StringComparison.Ordinal);

    public static void Save(string path, ModelShape shape, IReadOnlyDictionary<string, double[]> parameters)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(parameters);
        var tensors = new List<SafeTensor>();
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            if (!parameters.TryGetValue(name, out var values))
                throw new ArgumentException($"parameter '{name}' is missing");
            long[] dims = cols == 1 && name.EndsWith("lambdas", StringComparison.Ordinal) ? [rows] : [rows, cols];
            tensors.Add(new SafeTensor(name, StoredAsBf16(name) ? "BF16" : "F32", dims, values.Select(v => (float)v).ToArray()));
        }
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["producer"] = "autoresearch" });
    }

    /// <summary>The model shape a checkpoint holds: depth from the lambdas, width and vocabulary from wte, value-embedding layers by name.</summary>
    public static ModelShape InferShape(IReadOnlyDictionary<string, SafeTensor> tensors, string path, int seqLen, string windowPattern)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        SafeTensor Need(string name) => tensors.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"checkpoint '{path}' has no tensor '{name}'");
        int depth = (int)Need("resid_lambdas").Count;
        var wte = Need("transformer.wte.weight");
        if (wte.Shape.Length != 2)
            throw new InvalidDataException($"checkpoint '{path}': transformer.wte.weight should be 2-D, is [{string.Join(", ", wte.Shape)}]");
        int vocab = (int)wte.Shape[0], dim = (int)wte.Shape[1];
        if (dim % 128 != 0)
            throw new InvalidDataException($"checkpoint '{path}': width {dim} is not a multiple of the head dimension 128");
        var baseShape = ModelShape.FromKnobs(depth, dim / depth, windowPattern, vocab, seqLen);
        var hasVe = Enumerable.Range(0, depth).Select(i => tensors.ContainsKey($"value_embeds.{i}.weight")).ToArray();
        return baseShape with { ModelDim = dim, Heads = dim / 128, KvHeads = dim / 128, MlpHidden = 4 * dim, HasValueEmbedding = hasVe };
    }

    public static Dictionary<string, double[]> Load(string path, ModelShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var tensors = SafeTensors.Read(path);
        var result = new Dictionary<string, double[]>(StringComparer.Ordinal);
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            if (!tensors.TryGetValue(name, out var t))
                throw new InvalidDataException($"checkpoint '{path}' has no tensor '{name}'");
            if (t.Count != (long)rows * cols)
                throw new InvalidDataException($"checkpoint '{path}': tensor '{name}' has shape [{string.Join(", ", t.Shape)}]; the model needs {rows} × {cols}");
            result[name] = t.Values.Select(v => (double)v).ToArray();
        }
        return result;
    }
}
