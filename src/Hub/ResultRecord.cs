namespace AutoResearch.Hub;

/// <summary>
/// A result parsed from a post to the results channel (JSON: post_id, commit, platform, val_bpb, vram_gb, status, agent_id,
/// description, created_at). Commit is the prefix the agent posted (7-40 hex digits).
/// </summary>
public sealed record ResultRecord(long PostId, string Commit, string Platform, double ValBpb, double VramGb, string Status,
    string AgentId, string Description, string CreatedAt);
