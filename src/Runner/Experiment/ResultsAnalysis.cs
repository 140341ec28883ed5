namespace AutoResearch.Runner.Experiment;

/// <summary>
/// What `autoresearch analyze` reports about a results table. Experiment numbers are 1-based row numbers in the file,
/// so crashes keep their number even though they are not drawn.
/// </summary>
public sealed class ResultsAnalysis
{
    /// <summary>
    /// A kept experiment and its improvement over the previous kept one: previous val_bpb − this one, positive when it fell
    /// (NaN for the first, the baseline). Its change, new − old, is −Improvement.
    /// </summary>
    public readonly record struct KeptExperiment(int Number, ResultRow Row, double Improvement);

    /// <summary>A row and its experiment number.</summary>
    public readonly record struct NumberedRow(int Number, ResultRow Row);

    public ResultsAnalysis(IReadOnlyList<ResultRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        Rows = rows;
        var kept = new List<KeptExperiment>();
        var crashes = new List<NumberedRow>();
        double previous = double.NaN;
        for (int i = 0; i < rows.Count; i++)
        {
            ResultRow row = rows[i];
            switch (row.Status)
            {
                case ExperimentStatus.Keep:
                    KeepCount++;
                    kept.Add(new KeptExperiment(i + 1, row, previous - row.ValBpb));
                    previous = row.ValBpb;
                    break;
                case ExperimentStatus.Discard:
                    DiscardCount++;
                    break;
                default:
                    CrashCount++;
                    crashes.Add(new NumberedRow(i + 1, row));
                    break;
            }
        }
        Kept = kept;
        Crashes = crashes;
    }

    public IReadOnlyList<ResultRow> Rows { get; }
    public int KeepCount { get; }
    public int DiscardCount { get; }
    public int CrashCount { get; }

    /// <summary>Kept experiments in file order.</summary>
    public IReadOnlyList<KeptExperiment> Kept { get; }

    /// <summary>Crashed experiments in file order (they have no val_bpb, so the chart does not draw them).</summary>
    public IReadOnlyList<NumberedRow> Crashes { get; }

    /// <summary>Kept experiments after the first, largest val_bpb drop first.</summary>
    public IReadOnlyList<KeptExperiment> BiggestImprovements(int count)
    {
        var improvements = new List<KeptExperiment>(Kept.Count);
        for (int i = 1; i < Kept.Count; i++)
            improvements.Add(Kept[i]);
        improvements.Sort((a, b) => b.Improvement.CompareTo(a.Improvement));
        return improvements.Count > count ? improvements.GetRange(0, count) : improvements;
    }
}
