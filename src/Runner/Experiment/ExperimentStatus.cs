namespace AutoResearch.Runner.Experiment;

/// <summary>The outcome of one experiment as logged in results.tsv (written lower-case).</summary>
public enum ExperimentStatus
{
    /// <summary>val_bpb improved: the commit stays on the branch.</summary>
    Keep,
    /// <summary>No improvement: the branch was reset.</summary>
    Discard,
    /// <summary>The run failed or was killed: no val_bpb.</summary>
    Crash,
}
