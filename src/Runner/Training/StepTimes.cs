using System.Globalization;
using AutoResearch.Native;

namespace AutoResearch.Runner.Training;

/// <summary>
/// The counted steps' times for `train`'s step-time line: each step on the host clock (from the synchronisation that starts it
/// to the loss read that ends it) and, where the trainer times them (<see cref="ITrainer.LastStepDeviceMilliseconds"/>), each
/// micro-step and the optimizer step on the device. Against the sum of its parts, the host clock's step shows what the host
/// and the gaps between the parts add: a step should cost at most 1 % more than its micro-steps and its optimizer step.
/// </summary>
public sealed class StepTimes(int microSteps)
{
    private readonly List<double> _hostMilliseconds = [];
    private readonly List<double>[] _partMilliseconds = [.. Enumerable.Range(0, microSteps + 1).Select(_ => new List<double>())];
    private readonly double[] _parts = new double[microSteps + 1];

    /// <summary>Counted steps recorded.</summary>
    public int Count => _hostMilliseconds.Count;

    /// <summary>Records one step: its host-clock time and the trainer's device times of its parts (ignored unless the trainer
    /// gives one per micro-step and one for the optimizer).</summary>
    public void Add(double hostSeconds, ITrainer trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        Add(hostSeconds, _parts.AsSpan(0, trainer.LastStepDeviceMilliseconds(_parts)));
    }

    /// <summary>Records one step from its host-clock seconds and its parts' device milliseconds (micro-steps, then optimizer).</summary>
    public void Add(double hostSeconds, ReadOnlySpan<double> partMilliseconds)
    {
        _hostMilliseconds.Add(hostSeconds * 1e3);
        if (partMilliseconds.Length != _partMilliseconds.Length)
            return;
        for (int i = 0; i < partMilliseconds.Length; i++)
            _partMilliseconds[i].Add(partMilliseconds[i]);
    }

    /// <summary>
    /// "step time (medians of N counted steps): H ms on the host clock; on the device M1 + M2 ms of micro-steps and O ms of
    /// optimizer = S ms: the host and the gaps add X %", or only the host clock's median where the parts were not timed on every
    /// step; null before any step.
    /// </summary>
    public string? Line()
    {
        if (Count == 0)
            return null;
        double host = EventTiming.Median(_hostMilliseconds);
        var text = string.Create(CultureInfo.InvariantCulture, $"step time (medians of {Count} counted steps): {host:F1} ms on the host clock");
        if (_partMilliseconds[0].Count != Count)
            return text;
        var parts = _partMilliseconds.Select(EventTiming.Median).ToArray();
        double sum = parts.Sum();
        string micro = string.Join(" + ", parts[..^1].Select(p => p.ToString("F1", CultureInfo.InvariantCulture)));
        return text + string.Create(CultureInfo.InvariantCulture,
            $"; on the device {micro} ms of micro-steps and {parts[^1]:F2} ms of optimizer = {sum:F1} ms: the host and the gaps add {host / sum - 1:P1}");
    }
}
