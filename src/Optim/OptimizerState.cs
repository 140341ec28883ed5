using System.Globalization;
using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;

namespace AutoResearch.Optim;

/// <summary>
/// What MuonAdamW carries from one step to the next, by parameter name: the steps taken (AdamW's bias corrections), AdamW's
/// first and second moments for the Adam tensors, and for the Muon matrices the momentum buffer and NorMuon's second moment
/// (one value per row when rows ≥ cols, per column otherwise). Saved beside a checkpoint (<c>train --save-optimizer</c>) and
/// loaded by <c>parity --train-steps --optimizer-state</c>, so that K steps from a checkpoint continue a run instead of
/// starting a new one. Stored as safetensors in fp32, the GPU's own precision, under the PyTorch optimizer's buffer names
/// (<c>exp_avg.NAME</c>, <c>exp_avg_sq.NAME</c>, <c>momentum_buffer.NAME</c>, <c>second_momentum_buffer.NAME</c>).
/// </summary>
public sealed class OptimizerState
{
    public const string AdamFirstPrefix = "exp_avg.";
    public const string AdamSecondPrefix = "exp_avg_sq.";
    public const string MomentumPrefix = "momentum_buffer.";
    public const string SecondMomentPrefix = "second_momentum_buffer.";
    private const string KindKey = "kind";
    private const string Kind = "muon_adamw_state";
    private const string StepKey = "step";
    private const string PrecisionKey = "precision";

    public OptimizerState(int step, IReadOnlyDictionary<string, float[]> adamFirst, IReadOnlyDictionary<string, float[]> adamSecond,
        IReadOnlyDictionary<string, float[]> momentum, IReadOnlyDictionary<string, float[]> secondMoment)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        Step = step;
        AdamFirst = adamFirst ?? throw new ArgumentNullException(nameof(adamFirst));
        AdamSecond = adamSecond ?? throw new ArgumentNullException(nameof(adamSecond));
        Momentum = momentum ?? throw new ArgumentNullException(nameof(momentum));
        SecondMoment = secondMoment ?? throw new ArgumentNullException(nameof(secondMoment));
    }

    /// <summary>Steps taken.</summary>
    public int Step { get; }

    /// <summary>The optimizer's <see cref="OptimizerPrecision"/> when the state was taken (null when not recorded). A state
    /// may be loaded under the other setting: in reference precision the first step rounds the embeddings' moments to bf16.</summary>
    public OptimizerPrecision? Precision { get; init; }

    public IReadOnlyDictionary<string, float[]> AdamFirst { get; }

    public IReadOnlyDictionary<string, float[]> AdamSecond { get; }

    public IReadOnlyDictionary<string, float[]> Momentum { get; }

    public IReadOnlyDictionary<string, float[]> SecondMoment { get; }

    /// <summary>Length of NorMuon's second moment for a rows × cols matrix: per row when rows ≥ cols, else per column.</summary>
    public static int SecondMomentLength(int rows, int cols) => rows >= cols ? rows : cols;

    /// <summary>
    /// Throws naming <paramref name="source"/> and the tensor unless the state holds exactly the buffers the optimizer keeps for
    /// this shape and settings, each of its length.
    /// </summary>
    public void CheckMatches(ModelShape shape, OptimizerSettings settings, string source)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(settings);
        var expected = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, rows, cols) in shape.ParameterShapes())
        {
            if (settings.GroupOf(name) == ParameterGroup.Muon)
            {
                expected[MomentumPrefix + name] = (long)rows * cols;
                expected[SecondMomentPrefix + name] = SecondMomentLength(rows, cols);
            }
            else
            {
                expected[AdamFirstPrefix + name] = (long)rows * cols;
                expected[AdamSecondPrefix + name] = (long)rows * cols;
            }
        }
        var held = Buffers().ToDictionary(b => b.Name, b => (long)b.Values.Length, StringComparer.Ordinal);
        foreach (var (name, length) in expected)
        {
            if (!held.TryGetValue(name, out var actual))
                throw new InvalidDataException($"optimizer state '{source}' has no '{name}': it was saved for another model shape or another grouping of the parameters");
            if (actual != length)
                throw new InvalidDataException($"optimizer state '{source}': '{name}' holds {actual} values; this model needs {length}");
        }
        var extra = held.Keys.FirstOrDefault(n => !expected.ContainsKey(n));
        if (extra is not null)
            throw new InvalidDataException($"optimizer state '{source}' holds '{extra}', which this model has no use for: it was saved for another model shape");
    }

    /// <summary>Writes the state (to a temporary name, then renamed).</summary>
    public void Save(string path)
    {
        var tensors = Buffers().Select(b => new SafeTensor(b.Name, "F32", [b.Values.Length], b.Values)).ToList();
        SafeTensors.Write(path, tensors, new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["producer"] = "autoresearch",
            [KindKey] = Kind,
            [StepKey] = Step.ToString(CultureInfo.InvariantCulture),
            [PrecisionKey] = Precision is { } p ? p.Name() : "unknown",
        });
    }

    /// <summary>The step count of a state written by <see cref="Save"/>, from the header alone.</summary>
    public static int ReadStep(string path) => StepOf(SafeTensors.ReadMetadata(path), path);

    // The step count of a state's metadata; metadata of another kind, or a malformed step, throws naming the file.
    private static int StepOf(Dictionary<string, string> metadata, string path)
    {
        if (metadata.GetValueOrDefault(KindKey) != Kind)
            throw new InvalidDataException($"'{path}' is not an optimizer state (its metadata has no '{KindKey}: {Kind}'); `train --save-optimizer` writes one");
        if (!int.TryParse(metadata.GetValueOrDefault(StepKey), NumberStyles.None, CultureInfo.InvariantCulture, out int step))
            throw new InvalidDataException($"optimizer state '{path}': metadata '{StepKey}' is '{metadata.GetValueOrDefault(StepKey)}'; expected a whole number of steps");
        return step;
    }

    /// <summary>Reads a state written by <see cref="Save"/>; a file of another kind or a malformed step throws naming the file.</summary>
    public static OptimizerState Load(string path)
    {
        var metadata = SafeTensors.ReadMetadata(path);
        int step = StepOf(metadata, path);
        OptimizerPrecision? precision = null;
        if (metadata.TryGetValue(PrecisionKey, out var precisionName) && OptimizerPrecisions.Names.Contains(precisionName))
            precision = OptimizerPrecisions.Parse(precisionName);
        var adamFirst = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var adamSecond = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var momentum = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var secondMoment = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var (name, tensor) in SafeTensors.Read(path))
        {
            var (target, prefix) = name.StartsWith(AdamSecondPrefix, StringComparison.Ordinal) ? (adamSecond, AdamSecondPrefix)
                : name.StartsWith(AdamFirstPrefix, StringComparison.Ordinal) ? (adamFirst, AdamFirstPrefix)
                : name.StartsWith(SecondMomentPrefix, StringComparison.Ordinal) ? (secondMoment, SecondMomentPrefix)
                : name.StartsWith(MomentumPrefix, StringComparison.Ordinal) ? (momentum, MomentumPrefix)
                : throw new InvalidDataException($"optimizer state '{path}': tensor '{name}' is none of {AdamFirstPrefix}, {AdamSecondPrefix}, {MomentumPrefix} or {SecondMomentPrefix}NAME");
            if (tensor.Dtype != "F32")
                throw new InvalidDataException($"optimizer state '{path}': tensor '{name}' is {tensor.Dtype}; expected F32");
            var values = tensor.Values;
            int bad = Array.FindIndex(values, v => !float.IsFinite(v));
            if (bad >= 0)
                throw new InvalidDataException($"optimizer state '{path}': tensor '{name}' holds {values[bad]} at {bad}");
            // Second moments are means of squares: a negative one would make AdamW's square root NaN.
            if (prefix is AdamSecondPrefix or SecondMomentPrefix && Array.FindIndex(values, v => v < 0) is var negative and >= 0)
                throw new InvalidDataException($"optimizer state '{path}': tensor '{name}' holds {values[negative]} at {negative}; second moments are never negative");
            target[name[prefix.Length..]] = values;
        }
        return new OptimizerState(step, adamFirst, adamSecond, momentum, secondMoment) { Precision = precision };
    }

    private IEnumerable<(string Name, float[] Values)> Buffers()
        => AdamFirst.Select(kv => (AdamFirstPrefix + kv.Key, kv.Value))
            .Concat(AdamSecond.Select(kv => (AdamSecondPrefix + kv.Key, kv.Value)))
            .Concat(Momentum.Select(kv => (MomentumPrefix + kv.Key, kv.Value)))
            .Concat(SecondMoment.Select(kv => (SecondMomentPrefix + kv.Key, kv.Value)));
}
