using System.Text.Json;
using System.Text.Json.Nodes;

namespace AutoResearch.Model.Checkpoint;

/// <summary>
/// The model's parameters as a safetensors checkpoint in the reference's names and shapes (weights out × in, the lambdas as
/// vectors), the embeddings (wte, value_embeds) stored BF16 as in the reference, everything else F32. The header's metadata
/// records what the tensors alone cannot say: the whole <see cref="ModelShape"/> (T, head size, kv heads, MLP and activation,
/// soft cap, rotary base, per-layer windows and value embeddings) under <see cref="ShapeKey"/>, the experiment's knob values
/// under <see cref="KnobsKey"/> and the tokenizer's content hash under <see cref="TokenizerKey"/>. A checkpoint written before
/// these keys existed has none; <see cref="InferShape(IReadOnlyDictionary{string, SafeTensor}, string, int, string)"/> reads
/// it by the baseline's rules.
/// </summary>
public static class ModelCheckpoint
{
    /// <summary>Metadata key of the model shape (a JSON object).</summary>
    public const string ShapeKey = "model_shape";

    /// <summary>Metadata key of the knob values (a JSON object, name to value as text).</summary>
    public const string KnobsKey = "knobs";

    /// <summary>Metadata key of the tokenizer's content hash (SHA-256, lower-case hex).</summary>
    public const string TokenizerKey = "tokenizer_sha256";

    /// <summary>What a checkpoint's metadata says; each part null (knobs: empty) when the checkpoint does not record it.</summary>
    public sealed record Info(ModelShape? Shape, IReadOnlyDictionary<string, string> Knobs, string? TokenizerHash);

    public static bool StoredAsBf16(string name)
        => name == "transformer.wte.weight" || name.StartsWith("value_embeds.", StringComparison.Ordinal);

    /// <summary>
    /// Writes the parameters with the shape in the metadata, and the knob values and the tokenizer's hash (hex) when given.
    /// </summary>
    public static void Save(string path, ModelShape shape, IReadOnlyDictionary<string, double[]> parameters,
        IReadOnlyDictionary<string, string>? knobs = null, string? tokenizerHash = null)
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
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["producer"] = "autoresearch", [ShapeKey] = ShapeToJson(shape) };
        if (knobs is not null)
        {
            var json = new JsonObject();
            foreach (var (name, value) in knobs)
                json[name] = value;
            metadata[KnobsKey] = json.ToJsonString();
        }
        if (tokenizerHash is not null)
            metadata[TokenizerKey] = tokenizerHash;
        SafeTensors.Write(path, tensors, metadata);
    }

    /// <summary>The checkpoint's recorded shape, knobs and tokenizer hash (from the header only).</summary>
    public static Info ReadInfo(string path)
    {
        var metadata = SafeTensors.ReadMetadata(path);
        var shape = metadata.TryGetValue(ShapeKey, out var shapeJson) ? ShapeFromJson(shapeJson, path) : null;
        var knobs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (metadata.TryGetValue(KnobsKey, out var knobsJson))
        {
            try
            {
                foreach (var (name, value) in JsonNode.Parse(knobsJson)!.AsObject())
                    knobs[name] = value!.GetValue<string>();
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
            {
                throw new InvalidDataException($"checkpoint '{path}': metadata '{KnobsKey}' is not an object of knob names to text values", e);
            }
        }
        return new Info(shape, knobs, metadata.GetValueOrDefault(TokenizerKey));
    }

    /// <summary>The shape as the metadata's JSON: every field of <see cref="ModelShape"/>.</summary>
    public static string ShapeToJson(ModelShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var json = new JsonObject
        {
            ["depth"] = shape.Depth,
            ["model_dim"] = shape.ModelDim,
            ["heads"] = shape.Heads,
            ["kv_heads"] = shape.KvHeads,
            ["head_dim"] = shape.HeadDim,
            ["mlp_hidden"] = shape.MlpHidden,
            ["activation"] = shape.Activation.Name(),
            ["soft_cap"] = shape.SoftCap,
            ["rotary_base"] = shape.RotaryBase,
            ["vocab_size"] = shape.VocabSize,
            ["seq_len"] = shape.SeqLen,
            ["windows"] = new JsonArray(shape.Windows.Select(w => (JsonNode)w).ToArray()),
            ["value_embeddings"] = new JsonArray(shape.HasValueEmbedding.Select(v => (JsonNode)v).ToArray()),
        };
        return json.ToJsonString();
    }

    /// <summary>The shape from <see cref="ShapeToJson"/>; a missing or malformed field throws naming it and the checkpoint.</summary>
    public static ModelShape ShapeFromJson(string json, string path)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' is not a JSON object ({e.Message})", e);
        }
        T Field<T>(string name)
        {
            try
            {
                return o[name] is { } node ? node.GetValue<T>() : throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' has no '{name}'");
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' field '{name}' is not a {typeof(T).Name}", e);
            }
        }
        T[] List<T>(string name)
        {
            try
            {
                return o[name] is JsonArray array ? array.Select(n => n!.GetValue<T>()).ToArray()
                    : throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' has no list '{name}'");
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' list '{name}' holds a value that is not a {typeof(T).Name}", e);
            }
        }
        Activation ActivationField()
        {
            try
            {
                return Activations.Parse(Field<string>("activation"));
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}': {e.Message}", e);
            }
        }
        var shape = new ModelShape
        {
            Depth = Field<int>("depth"),
            ModelDim = Field<int>("model_dim"),
            Heads = Field<int>("heads"),
            KvHeads = Field<int>("kv_heads"),
            HeadDim = Field<int>("head_dim"),
            MlpHidden = Field<int>("mlp_hidden"),
            Activation = ActivationField(),
            SoftCap = Field<double>("soft_cap"),
            RotaryBase = Field<double>("rotary_base"),
            VocabSize = Field<int>("vocab_size"),
            SeqLen = Field<int>("seq_len"),
            Windows = List<int>("windows"),
            HasValueEmbedding = List<bool>("value_embeddings"),
        };
        if (shape.Depth < 1 || shape.Windows.Length != shape.Depth || shape.HasValueEmbedding.Length != shape.Depth || shape.KvHeads < 1
            || shape.Heads % shape.KvHeads != 0 || shape.ModelDim != shape.Heads * shape.HeadDim || shape.HeadDim % 2 != 0 || shape.SeqLen < 1)
        {
            throw new InvalidDataException($"checkpoint '{path}': metadata '{ShapeKey}' is inconsistent: depth {shape.Depth} with {shape.Windows.Length} windows and "
                + $"{shape.HasValueEmbedding.Length} value-embedding flags, width {shape.ModelDim} = {shape.Heads} heads × {shape.HeadDim}?, {shape.KvHeads} kv heads, T {shape.SeqLen}");
        }
        return shape;
    }

    /// <summary>
    /// The shape of a checkpoint without metadata by the baseline's rules: depth from the lambdas, width and vocabulary from
    /// wte, heads of 128 (no grouped-query attention), MLP relu² of 4 × width, soft cap 15, rotary base 10000, windows from
    /// <paramref name="windowPattern"/> and <paramref name="seqLen"/>, value-embedding layers by name.
    /// </summary>
    public static ModelShape InferShape(IReadOnlyDictionary<string, SafeTensor> tensors, string path, int seqLen, string windowPattern)
        => InferShape(tensors, path, (depth, width, vocab) => ModelShape.FromKnobs(depth, (width + depth - 1) / depth, windowPattern, vocab, seqLen));

    /// <summary>
    /// The shape of a checkpoint without metadata: <paramref name="shapeFor"/>(depth, width, vocabulary) read from the tensors
    /// (the lambdas, wte) gives the rest; its width must be the tensors' (else the head size is wrong); the value-embedding
    /// layers are the ones the checkpoint has tensors for.
    /// </summary>
    public static ModelShape InferShape(IReadOnlyDictionary<string, SafeTensor> tensors, string path, Func<int, int, int, ModelShape> shapeFor)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(shapeFor);
        SafeTensor Need(string name) => tensors.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"checkpoint '{path}' has no tensor '{name}'");
        int depth = (int)Need("resid_lambdas").Count;
        var wte = Need("transformer.wte.weight");
        if (wte.Shape.Length != 2)
            throw new InvalidDataException($"checkpoint '{path}': transformer.wte.weight should be 2-D, is [{string.Join(", ", wte.Shape)}]");
        int vocab = (int)wte.Shape[0], dim = (int)wte.Shape[1];
        var shape = shapeFor(depth, dim, vocab);
        if (shape.ModelDim != dim)
        {
            throw new InvalidDataException($"checkpoint '{path}': width {dim} is not a multiple of the head size {shape.HeadDim} "
                + $"(a checkpoint without a recorded shape is read with head size {shape.HeadDim}; parity's --set HeadDim=... describes another)");
        }
        var hasVe = Enumerable.Range(0, depth).Select(i => tensors.ContainsKey($"value_embeds.{i}.weight")).ToArray();
        return shape with { HasValueEmbedding = hasVe };
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
