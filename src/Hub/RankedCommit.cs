namespace AutoResearch.Hub;

/// <summary>A commit with its best ranked (non-crash) result, if any was posted for it.</summary>
public sealed record RankedCommit(CommitRecord Commit, ResultRecord? Best);
