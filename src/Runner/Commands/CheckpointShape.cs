using AutoResearch.Model;
using AutoResearch.Model.Checkpoint;
using AutoResearch.Runner.Experiment;

namespace AutoResearch.Runner;

/// <summary>
/// The model shape `sample` and `parity` run a checkpoint with. A checkpoint that records its shape (train --save writes it)
/// runs with that shape, and an option that contradicts it (--seq-len, --window-pattern, or a --set whose value differs from
/// the recorded knob) is refused, naming the option, the checkpoint's value and the one given. An older checkpoint, without
/// that record, is read by the baseline's rules (head size 128, T 2048 unless --seq-len says otherwise), which --set may
/// change to describe it (parity); its depth, width, vocabulary and value-embedding layers come from its tensors.
/// </summary>
public static class CheckpointShape
{
    public static ModelShape Resolve(string path, IReadOnlyDictionary<string, SafeTensor> tensors, ModelCheckpoint.Info info, int? seqLen,
        string? windowPattern, IReadOnlyList<string> sets)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(info);
        ArgumentNullException.ThrowIfNull(sets);
        if (seqLen is < 1)
            throw new ArgumentException($"--seq-len must be at least 1; got {seqLen}");
        if (info.Shape is { } recorded)
        {
            if (seqLen is int t && t != recorded.SeqLen)
                throw new ArgumentException($"--seq-len {t} contradicts checkpoint '{path}': it was trained with T {recorded.SeqLen} (leave --seq-len out to use it)");
            if (windowPattern is not null)
            {
                string trained = info.Knobs.TryGetValue(nameof(Hyperparameters.WindowPattern), out var knob)
                    ? Layers(knob, recorded.Depth, "the recorded WindowPattern")
                    : string.Concat(recorded.Windows.Select(w => w == recorded.SeqLen ? 'L' : 'S'));
                string given = Layers(windowPattern, recorded.Depth, "--window-pattern");
                if (given != trained)
                {
                    throw new ArgumentException($"--window-pattern {windowPattern} contradicts checkpoint '{path}': its {recorded.Depth} layers were trained as {trained}, "
                        + $"the pattern gives {given} (leave --window-pattern out to use the checkpoint's)");
                }
            }
            foreach (var assignment in sets)
            {
                var (name, value) = Knobs.Split(assignment);
                var knobName = Knobs.Find(name).Name;
                if (!info.Knobs.TryGetValue(knobName, out var trained))
                {
                    throw new ArgumentException($"--set {assignment}: checkpoint '{path}' records its shape ({recorded.Describe()}) but not its knobs; "
                        + "leave --set out to use the shape");
                }
                string given = KnobOptions.Normalise(knobName, value);
                if (given != KnobOptions.Normalise(knobName, trained))
                    throw new ArgumentException($"--set {knobName}={value} contradicts checkpoint '{path}': it was trained with {knobName}={trained}");
            }
            return recorded;
        }

        // An older checkpoint: the knobs (defaults, --window-pattern, --set) describe what the tensors do not say.
        var shortcuts = windowPattern is null ? [] : new[] { new KnobOptions.Shortcut("--window-pattern", nameof(Hyperparameters.WindowPattern), windowPattern) };
        var h = KnobOptions.Resolve(Hyperparameters.Default, shortcuts, sets);
        bool depthSet = KnobOptions.Sets(sets, nameof(Hyperparameters.Depth));
        int seq = seqLen ?? ExperimentConstants.MaxSeqLen;
        return ModelCheckpoint.InferShape(tensors, path, (depth, width, vocab) =>
        {
            if (depthSet && h.Depth != depth)
                throw new ArgumentException($"--set Depth={h.Depth} contradicts checkpoint '{path}': its tensors hold {depth} layers");
            return (h with { Depth = depth, AspectRatio = (width + depth - 1) / depth }).Shape(vocab, seq);
        });
    }

    /// <summary>A window pattern spelled out over the layers (S or L each; the last layer is always L), checked for S and L only.</summary>
    public static string Layers(string pattern, int depth, string what)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length == 0 || pattern.AsSpan().IndexOfAnyExcept("SLsl") >= 0)
            throw new ArgumentException($"{what} '{pattern}' is invalid: expected a non-empty string of S (short window) and L (whole context)");
        return string.Concat(Enumerable.Range(0, depth).Select(i => i == depth - 1 ? 'L' : char.ToUpperInvariant(pattern[i % pattern.Length])));
    }
}
